acl internal {
    "10.1.2.3"/8;
}
