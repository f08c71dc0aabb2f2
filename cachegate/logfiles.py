"""Log files every process shares the handling of: access lines buffered, one format per file, reopened on
SIGUSR1 so that logrotate can move a file away and the process goes on in a new one.

An access log is not the logging module: its record objects, caller lookup and formatter cost about 40 µs a
line, as much as a fifth of a cache hit. A line here is one f-string in a list; the time stamp is formatted
once per second; the list is written out once a second (or every FLUSH_LINES lines) in one write call, so
processes that share a file (the proxy's workers, O_APPEND) never interleave within a line.

The process's own log (the logging module, at `logging.level`) goes to stderr, which the launcher points at
`<name>.log`; when stderr is a file, reopening opens that path again in its place, so it rotates too.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

FLUSH_EVERY = 1.0   # seconds a line may wait in memory
FLUSH_LINES = 2000  # ...or this many lines, whichever comes first
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("text", "json")
_PLAIN = frozenset(map(chr, range(0x20, 0x7F))) - {'"', "\\"}  # characters a JSON string keeps as they are

_reopeners: list[Callable[[], None]] = []


def on_reopen(reopen: Callable[[], None]) -> Callable[[], None]:
    """Call `reopen` when reopen_all() runs (SIGUSR1); returns what forgets it again."""
    _reopeners.append(reopen)
    return lambda: _reopeners.remove(reopen) if reopen in _reopeners else None


def reopen_all() -> None:
    """Every log file of the process opened again at its path: after logrotate moved them, new files."""
    for reopen in list(_reopeners):
        try:
            reopen()
        except OSError as exc:  # a full disk or a removed folder must not take the process down
            logging.getLogger("cachegate").error("cannot reopen a log file: %s", exc)


OWN_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


def setup_logging(level: str, fmt: str = OWN_FORMAT) -> None:
    """The process's own log: stderr at `level`; reopened with the rest when stderr is a file."""
    logging.basicConfig(level=LEVELS[level], stream=sys.stderr, format=fmt, force=True)
    path = _stderr_path()
    if path is not None:
        on_reopen(lambda: _reopen_stderr(path))


def _stderr_path() -> Path | None:
    """Where stderr writes, if it is a regular file (the launcher's <name>.log), read once at start: after
    a rotation the descriptor points at the moved file, while this path names the new one."""
    try:
        if not stat.S_ISREG(os.fstat(2).st_mode):
            return None
        return Path(os.readlink("/proc/self/fd/2"))
    except OSError:
        return None


def _reopen_stderr(path: Path) -> None:
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        same = os.fstat(1).st_ino == os.fstat(2).st_ino  # stdout went to the same file: it follows
        os.dup2(fd, 2)
        if same:
            sys.stdout.flush()
            os.dup2(fd, 1)
    finally:
        os.close(fd)


class LineFile:
    """Where access lines go: a file opened for appending (reopened on SIGUSR1), or a stream (stdout)."""

    def __init__(self, path: Path | None = None, stream: TextIO | None = None) -> None:
        self.path = path
        self.stream = stream
        self._file: TextIO | None = None
        self._forget = lambda: None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8", errors="backslashreplace")
            self._forget = on_reopen(self.reopen)

    def write(self, text: str) -> None:
        out = self._file or self.stream or sys.stderr
        out.write(text)
        out.flush()

    def reopen(self) -> None:
        if self.path is not None:
            fresh = self.path.open("a", encoding="utf-8", errors="backslashreplace")
            old, self._file = self._file, fresh
            if old is not None:
                old.close()

    def close(self) -> None:
        self._forget()
        if self._file is not None:
            self._file.close()
            self._file = None


class AccessLines:
    """Buffered access lines in one format (text or JSON lines), written out together."""

    def __init__(self, out: LineFile, fmt: str = "text") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"access log format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        self.out, self.json = out, fmt == "json"
        self.pending: list[str] = []
        self.limit = FLUSH_LINES
        self._second = -1
        self._stamp = ""

    def stamp(self) -> str:
        """The time of now, to the millisecond: `2026-12-01T12:00:00.123Z`."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(now % 1 * 1000):03d}Z"

    def add(self, line: str) -> None:
        self.pending.append(line)
        if len(self.pending) >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            lines, self.pending = self.pending, []
            self.out.write("".join(lines))

    async def run(self) -> None:
        """Flush every FLUSH_EVERY seconds until cancelled, and once more then."""
        try:
            while True:
                await asyncio.sleep(FLUSH_EVERY)
                self.flush()
        finally:
            self.flush()


def quoted(value: str) -> str:
    """`value` as a JSON string; plain text (a path, a route, a Cache-Status) without json.dumps."""
    if _PLAIN.issuperset(value):
        return f'"{value}"'
    return json.dumps(value)
