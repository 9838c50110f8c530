acl purgers {
    "127.0.0.1";
}

acl purgers {
    "10.0.0.0"/8;
}
