"""Loopback network probes: free ports, TCP readiness and HTTP health checks."""
from __future__ import annotations

import http.client
import socket
import threading

_given_lock = threading.Lock()
# Ports handed out by this process: the OS may offer the same free port twice before anyone binds it.
_given: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now, never the same one twice in this process."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        with _given_lock:
            if port not in _given:
                _given.add(port)
                return port
    raise RuntimeError("no free port found after 100 tries")


def loopback(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host` (every interface: over loopback)."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(host: str, port: int, path: str = "/-/health", timeout: float = 1.0) -> bool:
    """True when GET http://host:port/path answers 200."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
