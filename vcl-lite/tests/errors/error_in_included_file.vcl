vcl 4.1;

include "inc/normalize.vcl";

sub vcl_recv {
    call normalize;
}
