sub vcl_pipe {
    return (pipe);
}
