acl local {
    "localhost"/8;
}
