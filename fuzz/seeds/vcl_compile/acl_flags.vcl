acl office +log -pedantic +table -fold {
    "localhost";
    "10.1.2.3"/8;
    "192.168"/24;
    ! ( "10.9.0.1" );
    ( ! "optional.invalid" );
    ( "localhost" );
    "::ffff:10.0.0.1"/120;
}
sub vcl_recv {
    if (client.ip ~ office) {
        return (pass);
    }
}
