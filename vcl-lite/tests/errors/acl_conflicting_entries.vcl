acl office -pedantic {
    "192.0.2.0"/24;
    ! "192.0.2.77"/24;
}
