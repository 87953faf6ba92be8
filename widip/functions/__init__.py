"""Plain functions and integration clients; imports neither dramatiq nor falcon."""
