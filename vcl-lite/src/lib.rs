//! vcl-lite: the policy language of lacquer (see issue "vcl-lite"). Not yet implemented.
