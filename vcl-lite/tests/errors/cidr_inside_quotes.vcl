acl internal {
    "192.168.0.0/16";
}
