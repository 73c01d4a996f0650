"""The hub service, and the built-in introspection commands of domain ``bollydog``."""
