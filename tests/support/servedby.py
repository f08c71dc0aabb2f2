"""Which process serves a client's TCP connection: its server side in /proc/net/tcp, then in a pid's fds.

Workers sharing one port (SO_REUSEPORT) each accept connections of their own; a test that must see requests
served by every worker asks, per connection, which of the worker pids holds the accepted socket (while the
connection is still open: `request_on_new_connection`).
"""
from __future__ import annotations

import asyncio
import json as jsonlib
from pathlib import Path
from typing import Iterable

from stack.ports import tcp_entries

_ESTABLISHED = "01"


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _server_socket(server_port: int, client_port: int) -> int | None:
    """The inode of the accepted socket of the connection from `client_port` to `server_port`."""
    for fields in tcp_entries():
        if (fields[3] == _ESTABLISHED and _port(fields[1]) == server_port and _port(fields[2]) == client_port
                and int(fields[9])):
            return int(fields[9])
    return None


def serving_pid(server_port: int, client_port: int, candidates: Iterable[int]) -> int | None:
    """The one of `candidates` that holds the server side of the open connection from `client_port`."""
    inode = _server_socket(server_port, client_port)
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in candidates:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if fd.readlink().name == wanted:
                    return pid
            except OSError:
                continue
    return None


async def request_on_new_connection(port: int, method: str, path: str, candidates: Iterable[int], *,
                                    headers: dict[str, str] | None = None,
                                    json: object = None) -> tuple[int, dict[str, str], int | None]:
    """One HTTP/1.1 request to 127.0.0.1:`port` on a connection of its own: (status, headers with lower-case
    names, the pid of `candidates` that served it). The answer must carry Content-Length (the proxy's do)."""
    body = b"" if json is None else jsonlib.dumps(json).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if json is not None:
        lines.append("Content-Type: application/json")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        client_port = writer.get_extra_info("sockname")[1]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        answer = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                answer[name.strip().lower()] = value.strip()
        await asyncio.wait_for(reader.readexactly(int(answer.get("content-length", "0"))), 30)
        pid = await asyncio.to_thread(serving_pid, port, client_port, list(candidates))
    finally:
        writer.close()
    return status, answer, pid
