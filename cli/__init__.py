"""The `jobyard` command: the embedded default (`up`), the three services, the client commands."""
