acl purgers {
    "localhost";
    ( "optional.invalid" );
    "purger.invalid";
}
