sub vcl_recv {
	if (req.htpp.Host) {
		return (pass);
	}
}
