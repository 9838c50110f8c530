# Includes the file that includes it.
include "../include_cycle.vcl";
