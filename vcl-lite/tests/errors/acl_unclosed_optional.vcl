acl local {
    ( "backend.invalid";
}
