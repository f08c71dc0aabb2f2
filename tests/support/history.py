"""A recorded history of concurrent reads and writes of versioned entities, checked against the guarantees.

The rules are DESIGN.md's, over real time (each operation's start and end on one clock, the test's):

- read-your-writes: "after a write through the proxy returns 2xx with version v, every later read through
  any proxy process returns a version >= v". A read that starts after a write's 2xx ended, by the same
  client or any other, shows at least that version. A read that overlaps the write promises nothing.
- monotonic: "the version a key serves never goes backwards". A read that starts after another read of the
  entity ended (the same reader's earlier read, or anyone's) shows at least the version that one showed.
- final: after the run, with nothing in flight, each read through the proxy shows exactly the version the
  database holds: never older (the cache kept something a write replaced), and nothing else exists.

An entity is one row: its views (a public and a private one of a user) share its version, so they are one
key here. Reads and writes that got no 2xx carry no version and constrain nothing.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

READ, WRITE = "read", "write"


@dataclass(frozen=True)
class Op:
    client: str
    kind: str               # READ or WRITE
    key: str                # the entity, e.g. "trip:3"
    start: float
    end: float
    version: int | None     # seen by a read, acknowledged to a write; None: no 2xx
    what: str = ""          # the request, for the messages

    def __str__(self) -> str:
        return f"{self.client} {self.what or self.kind} [{self.start:.4f}-{self.end:.4f}] v{self.version}"


@dataclass(frozen=True)
class Violation:
    rule: str               # "read-your-writes", "monotonic" or "final"
    key: str
    detail: str


@dataclass
class History:
    """Operations as they end, on one clock (`clock()` gives the start of the next one)."""
    clock: Callable[[], float]
    ops: list[Op] = field(default_factory=list)

    def add(self, client: str, kind: str, key: str, start: float, version: int | None, what: str = "") -> Op:
        op = Op(client, kind, key, start, self.clock(), version, what)
        self.ops.append(op)
        return op


class _Known:
    """Per key, the highest version among operations that ended strictly before a given time."""

    def __init__(self, ops: Iterable[Op]) -> None:
        by_key: dict[str, list[Op]] = defaultdict(list)
        for op in ops:
            by_key[op.key].append(op)
        self._ends: dict[str, list[float]] = {}
        self._best: dict[str, list[Op]] = {}   # the op with the highest version up to each end, in order
        for key, found in by_key.items():
            found.sort(key=lambda op: op.end)
            best: list[Op] = []
            for op in found:
                assert op.version is not None
                best.append(op if not best or op.version > (best[-1].version or 0) else best[-1])
            self._ends[key], self._best[key] = [op.end for op in found], best

    def before(self, key: str, t: float) -> Op | None:
        i = bisect.bisect_left(self._ends.get(key, []), t)
        return self._best[key][i - 1] if i else None


def _against(rule: str, reads: list[Op], known: _Known, why: str) -> list[Violation]:
    out = []
    for read in reads:
        floor = known.before(read.key, read.start)
        assert read.version is not None
        if floor is not None and read.version < (floor.version or 0):
            who = "the same client" if floor.client == read.client else floor.client
            out.append(Violation(rule, read.key, f"{read}, but {why} v{floor.version} before it started "
                                                 f"({who}: {floor})"))
    return out


def read_your_writes(ops: Iterable[Op]) -> list[Violation]:
    ops = list(ops)
    reads = [op for op in ops if op.kind == READ and op.version is not None]
    acked = [op for op in ops if op.kind == WRITE and op.version is not None]
    return _against("read-your-writes", reads, _Known(acked), "a write was acknowledged at")


def monotonic(ops: Iterable[Op]) -> list[Violation]:
    reads = [op for op in ops if op.kind == READ and op.version is not None]
    return _against("monotonic", reads, _Known(reads), "a read had shown")


def final(reads: Iterable[Op], database: Mapping[str, int]) -> list[Violation]:
    """The reads made after the run (each view of each key) against the rows' versions, read directly."""
    reads = list(reads)
    out = [Violation("final", key, f"no read of {key} after the run")
           for key in sorted(set(database) - {op.key for op in reads})]
    for op in reads:
        stored = database.get(op.key)
        if op.version != stored:
            out.append(Violation("final", op.key, f"{op} after the run; the database holds v{stored}"))
    return out


def check(ops: Iterable[Op], finals: Iterable[Op] = (), database: Mapping[str, int] | None = None
          ) -> list[Violation]:
    """Every rule over the history and the reads after it; `final` too when the rows are given."""
    ops, finals = list(ops), list(finals)
    found = read_your_writes(ops + finals) + monotonic(ops + finals)
    if database is not None:
        found += final(finals, database)
    return found
