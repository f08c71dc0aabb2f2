"""The history of a scenario: one record per operation a client (or the database observer) made.

Times are seconds of one monotonic clock, relative to the scenario's start. An entity is named by its key
(`user:7`, `trip:3`): the public view `/users/7` and the private one `/users/me` are the same entity at the
same version, so both are recorded under `user:7`.
"""
from __future__ import annotations

import csv
import gzip
import io
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Iterable, Iterator

READ, WRITE, SEARCH, OBSERVE = "read", "write", "search", "observe"
DB_CLIENT = "db"   # the observer's client name: versions read straight from MariaDB


@dataclass(frozen=True)
class Op:
    """What one client did and saw. `status` 0: no HTTP answer (then `error` says why)."""

    client: str
    op: str              # read | write | search | observe
    key: str             # the entity, e.g. user:7 ('' for a search)
    start: float
    end: float
    status: int = 0
    version: int | None = None   # the version an answer showed (ETag / body), or a row's version
    sent: str = ""               # what a write sent (its unique title), to match reads to writes
    seen: str = ""               # what a read showed of that field
    error: str = ""              # no answer: connect, reset, timeout, ... ('' when there was one)
    cache: str = ""              # Cache-Status, short: hit, stale, miss, miss/fenced, bypass/CACHE-OFF...
    target: str = ""             # the request target, e.g. /users/me

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def latency(self) -> float:
        return self.end - self.start


COLUMNS = [f.name for f in fields(Op)]


def short_cache_status(value: str | None) -> str:
    """`cachegate; hit; ttl=3` -> hit; `cachegate; fwd=miss; fwd-status=200; detail=fenced` -> miss/fenced."""
    if not value:
        return ""
    parts = [p.strip() for p in value.split(";")[1:]]
    kind, detail = "", ""
    for part in parts:
        if part in ("hit", "stale") and not kind:
            kind = part
        elif part.startswith("fwd=") and not kind:
            kind = part[4:]
        elif part.startswith("detail="):
            detail = part[7:]
    return f"{kind}/{detail}" if detail else kind


def write_csv(ops: Iterable[Op], path: Path) -> int:
    """The history as gzipped CSV (one header line, one line per operation); returns the count."""
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same history gives the same bytes, so a re-rendered run shows no spurious change.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
        out = csv.writer(text)
        out.writerow(COLUMNS)
        for op in ops:
            row = list(astuple(op))
            row[3], row[4] = f"{op.start:.6f}", f"{op.end:.6f}"
            out.writerow(["" if v is None else v for v in row])
            count += 1
    return count


def read_csv(path: Path) -> Iterator[Op]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
        for row in csv.DictReader(text):
            yield Op(row["client"], row["op"], row["key"], float(row["start"]), float(row["end"]),
                     int(row["status"]), int(row["version"]) if row["version"] else None, row["sent"],
                     row["seen"], row["error"], row["cache"], row["target"])
