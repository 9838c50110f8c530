# Included by error_in_included_file.vcl.
sub normalize {
    set req.http.Host = std.tolower(req.http.Hots) + ;
}
