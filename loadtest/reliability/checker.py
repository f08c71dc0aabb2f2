"""The history checker: the design's guarantees as rules over one scenario's operations (a pure module).

Rules (each violation is listed with the operation that broke it):

- lost: every acknowledged write is in the database afterwards: the row's final version is at least every
  acknowledged version, a row at exactly the highest acknowledged version holds what that write sent, and no
  two acknowledged writes of one entity got the same version.
- read-your-writes: a read by a client that starts after that client's write of version v returned (2xx)
  shows a version >= v (or is not a 2xx at all).
- monotonic: a client's 2xx read that starts after its earlier 2xx read of the entity ended shows a version
  >= the earlier one.
- stale: a 2xx read shows no version older than a write acknowledged (to anyone) before the read started.
- older-than-db: a 2xx read shows no version older than one the database observer saw committed `lag`
  seconds before the read started. The lag is the write fence's lifetime: a read that joins a fill already
  in flight may get what the database held when that fill began, and a write not yet answered promises
  nothing (the strict count, lag 0, is reported beside the rule); an entry a crash left behind is older for
  much longer than that.
- content: a 2xx read at a version an acknowledged write produced shows what that write sent.
- final: after the scenario, each entity read through the gateway shows exactly the database's version.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

from loadtest.reliability.history import OBSERVE, READ, WRITE, Op

RULES = ("lost", "read-your-writes", "monotonic", "stale", "older-than-db", "content", "final")


@dataclass(frozen=True)
class Violation:
    rule: str
    key: str
    client: str
    at: float            # when the offending operation started (or the end of the scenario, for lost/final)
    detail: str

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Row:
    """An entity's row in the database after the scenario: its version and the written field."""

    version: int
    value: str


class _Floor:
    """Versions known by given times; `before(t)` is the highest one known strictly before t."""

    def __init__(self, points: Iterable[tuple[float, int]]) -> None:
        ordered = sorted(points)
        self.times = [t for t, _ in ordered]
        self.highest: list[int] = []
        top = 0
        for _, version in ordered:
            top = max(top, version)
            self.highest.append(top)

    def before(self, t: float) -> int:
        i = bisect.bisect_left(self.times, t)
        return self.highest[i - 1] if i else 0


def check(ops: Iterable[Op], rows: Mapping[str, Row | None], final: Iterable[Op] = (), *,
          lag: float = 0.0) -> dict[str, list[Violation]]:
    """Every rule over one scenario: `ops` (clients and observer), the rows afterwards, the final reads."""
    ops = list(ops)
    reads = [op for op in ops if op.op == READ and op.ok and op.version is not None]
    acked = [op for op in ops if op.op == WRITE and op.ok and op.version is not None]
    found: dict[str, list[Violation]] = {rule: [] for rule in RULES}
    found["lost"] = _lost(acked, rows, ops)
    found["read-your-writes"] = _per_client(reads, acked, "read-your-writes", "its own write returned")
    found["monotonic"] = _per_client(reads, reads, "monotonic", "its earlier read showed")
    found["stale"] = _global(reads, acked, "stale", "a write acknowledged before it started")
    found["older-than-db"] = older_than_db(ops, lag)
    found["content"] = _content(reads, acked)
    found["final"] = _final(list(final), rows)
    return found


def _lost(acked: list[Op], rows: Mapping[str, Row | None], ops: list[Op]) -> list[Violation]:
    out: list[Violation] = []
    end = max((op.end for op in ops), default=0.0)
    by_key: dict[str, dict[int, Op]] = defaultdict(dict)
    for op in acked:
        assert op.version is not None
        twin = by_key[op.key].get(op.version)
        if twin is not None:
            out.append(Violation("lost", op.key, op.client, op.start,
                                 f"two acknowledged writes got version {op.version} "
                                 f"({twin.client} sent {twin.sent!r}, {op.client} sent {op.sent!r})"))
        else:
            by_key[op.key][op.version] = op
    for key, writes in sorted(by_key.items()):
        top = max(writes)
        row = rows.get(key)
        if row is None:
            out.append(Violation("lost", key, writes[top].client, end,
                                 f"acknowledged v{top}, but the database has no row"))
        elif row.version < top:
            out.append(Violation("lost", key, writes[top].client, end,
                                 f"acknowledged v{top}, but the database is at v{row.version}"))
        elif row.version == top and row.value != writes[top].sent:
            out.append(Violation("lost", key, writes[top].client, end,
                                 f"the database is at v{top} with {row.value!r}, "
                                 f"but the write acknowledged at v{top} sent {writes[top].sent!r}"))
    return out


def _describe(op: Op) -> str:
    return f"{op.client} {op.op} {op.target or op.key} [{op.start:.3f}-{op.end:.3f}s] -> {op.status}"


def _per_client(reads: list[Op], known: list[Op], rule: str, what: str) -> list[Violation]:
    """Reads of (client, key) against the highest version the same client knew before each read started."""
    floors: dict[tuple[str, str], _Floor] = {}
    grouped: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for op in known:
        assert op.version is not None
        grouped[(op.client, op.key)].append((op.end, op.version))
    for pair, points in grouped.items():
        floors[pair] = _Floor(points)
    out = []
    for op in reads:
        floor = floors.get((op.client, op.key))
        least = floor.before(op.start) if floor else 0
        assert op.version is not None
        if op.version < least:
            out.append(Violation(rule, op.key, op.client, op.start,
                                 f"{_describe(op)} showed v{op.version}; {what} v{least}"))
    return out


def _global(reads: list[Op], known: list[Op], rule: str, what: str) -> list[Violation]:
    """Reads of a key against the highest version anyone knew (acknowledged, observed) before they started."""
    grouped: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for op in known:
        assert op.version is not None
        grouped[op.key].append((op.end, op.version))
    floors = {key: _Floor(points) for key, points in grouped.items()}
    out = []
    for op in reads:
        floor = floors.get(op.key)
        least = floor.before(op.start) if floor else 0
        assert op.version is not None
        if op.version < least:
            out.append(Violation(rule, op.key, op.client, op.start,
                                 f"{_describe(op)} showed v{op.version}; {what} v{least}"))
    return out


def older_than_db(ops: Iterable[Op], lag: float = 0.0) -> list[Violation]:
    """2xx reads older than a version the database observer saw at least `lag` seconds before they started."""
    ops = list(ops)
    reads = [op for op in ops if op.op == READ and op.ok and op.version is not None]
    observed = [Op(op.client, op.op, op.key, op.start, op.end + lag, op.status, op.version)
                for op in ops if op.op == OBSERVE and op.ok and op.version is not None]
    what = "the database showed " + (f"{lag:g} s before it started" if lag else "before it started")
    return _global(reads, observed, "older-than-db", what)


def _content(reads: list[Op], acked: list[Op]) -> list[Violation]:
    sent = {(op.key, op.version): op for op in acked}
    out = []
    for op in reads:
        write = sent.get((op.key, op.version))
        if write is not None and op.seen != write.sent:
            out.append(Violation("content", op.key, op.client, op.start,
                                 f"{_describe(op)} showed {op.seen!r} at v{op.version}; the write "
                                 f"acknowledged at v{op.version} ({write.client}) sent {write.sent!r}"))
    return out


def _final(final: list[Op], rows: Mapping[str, Row | None]) -> list[Violation]:
    out = []
    for op in final:
        row = rows.get(op.key)
        expected = "404 (no row)" if row is None else f"v{row.version}"
        if row is None and op.status == 404:
            continue
        if not op.ok or row is None or op.version != row.version:
            shown = f"v{op.version}" if op.ok else (f"{op.status}" if op.status else op.error or "no answer")
            out.append(Violation("final", op.key, op.client, op.start,
                                 f"{op.target} through the gateway after the scenario: {shown} "
                                 f"({op.cache or 'no Cache-Status'}); the database: {expected}"))
    return out


def counts(found: Mapping[str, list[Violation]]) -> dict[str, int]:
    return {rule: len(found.get(rule, [])) for rule in RULES}
