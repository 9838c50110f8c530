acl purgers +log +strict {
    "localhost";
}
