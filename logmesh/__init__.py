"""logmesh: shared code for the role services (generated API, TLS, errors, client, CLI)."""

__version__ = "0.1.0"
