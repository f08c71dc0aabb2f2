"""Whether a server could bind its port now, and who holds it: pid and command from /proc/net/tcp and fds."""
from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from stack.process import pid_cmdline

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN, _CLOSE = "0A", "07"   # TCP states as /proc/net/tcp writes them; CLOSE is bound but not listening
COMMAND_SHOWN = 80             # characters of the owner's command line in a message


@dataclass(frozen=True)
class Owner:
    """A process with a socket on the port; pid None when its fds are not ours to read (another user)."""

    pid: int | None
    command: str
    uid: int | None

    def __str__(self) -> str:
        if self.pid is None:
            who = f"uid {self.uid}" if self.uid is not None else "an unknown user"
            return f"a process of {who} (not visible to us)"
        command = self.command if len(self.command) <= COMMAND_SHOWN else self.command[:COMMAND_SHOWN] + "..."
        return f"pid {self.pid} ({command or 'command not visible'})"


def bind_error(host: str, port: int) -> OSError | None:
    """None when a server could bind host:port now (as ours do, with SO_REUSEADDR), else the refusal."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # Like the servers: a port whose last connections are in TIME_WAIT is free, a listener is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        return exc
    return None


def owners(port: int) -> list[Owner]:
    """The processes with a TCP socket bound to `port` (listeners first), as far as /proc shows them."""
    sockets = _sockets(port)
    if not sockets:
        return []
    found: dict[int, list[int]] = {}   # inode -> pids
    wanted = {f"socket:[{inode}]": inode for inode, _ in sockets}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue   # another user's process, or gone meanwhile
        for fd in fds:
            try:
                inode = wanted.get(fd.readlink().name)
            except OSError:
                continue
            if inode is not None:
                found.setdefault(inode, []).append(int(proc.name))
    # One socket may be shared (a server's workers), one process may hold two (IPv4 and IPv6): one line each.
    result: dict[tuple[int | None, int], Owner] = {}
    for inode, uid in sockets:
        pids = sorted(set(found.get(inode, [])))
        for pid in pids:
            result.setdefault((pid, uid), Owner(pid, pid_cmdline(pid).strip(), uid))
        if not pids:
            result.setdefault((None, uid), Owner(None, "", uid))
    return list(result.values())


def taken(host: str, port: int) -> str | None:
    """None when host:port is free for a server, else one phrase: who holds it, or why it cannot bind."""
    error = bind_error(host, port)
    if error is None:
        return None
    if not isinstance(error, socket.gaierror) and error.errno == errno.EADDRINUSE:
        held = owners(port)
        return "taken by " + ", ".join(map(str, held)) if held else "taken (its owner is not visible)"
    return f"not available: {error.strerror or error}"


def _sockets(port: int) -> list[tuple[int, int]]:
    """(inode, uid) of the sockets bound to `port`: listeners, else sockets bound but not listening."""
    by_state: dict[str, list[tuple[int, int]]] = {_LISTEN: [], _CLOSE: []}
    for fields in tcp_entries():
        if fields[3] not in by_state:
            continue
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        inode = int(fields[9])
        if local_port == port and inode:
            by_state[fields[3]].append((inode, int(fields[7])))
    return by_state[_LISTEN] or by_state[_CLOSE]


def tcp_entries() -> Iterator[list[str]]:
    """The fields of each socket line of /proc/net/tcp and tcp6 (a table that cannot be read is left out)."""
    for table in _TABLES:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 10:
                yield fields
