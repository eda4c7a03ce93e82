"""Local TCP port helpers: pick a free port, check that one is free, turn a bind into a URL."""

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def split_bind(bind: str) -> tuple[str, int]:
    """'127.0.0.1:8080' -> ('127.0.0.1', 8080); '[::1]:8080' -> ('::1', 8080)."""
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


def url_for_bind(bind: str) -> str:
    """The URL a local client uses to reach a server bound to `bind` (wildcards become loopback)."""
    host, port = split_bind(bind)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
