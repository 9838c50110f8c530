vcl 4.1;
import bodyaccess;
