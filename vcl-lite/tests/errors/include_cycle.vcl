include "inc/loop.vcl";
