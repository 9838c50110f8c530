vcl 4.1;

probe healthcheck {
    .url = "/health_check.php";
    .timeout = 2;
    .interval = 5s;
    .window = 10;
    .threshold = 5;
}

backend default {
    .host = "app";
    .port = "8080";
    .first_byte_timout = 600s;
    .probe = helthcheck;
}

backend default {
    .host = "other";
}

backend static {
    .port = "80";
}
