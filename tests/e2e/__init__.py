"""End-to-end tests: the whole request path on real sockets."""
