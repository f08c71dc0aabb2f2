"""MariaDB GTID positions: one `domain-server-seq` per replication domain, parsed, advanced and compared."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping


@dataclass(frozen=True, slots=True)
class Gtid:
    domain: int
    server: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server}-{self.seq}"


def parse_gtid(text: str) -> Gtid:
    """'0-1-15' -> Gtid; ValueError when it is not one."""
    parts = text.strip().split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a GTID: {text!r}")
    return Gtid(*(int(p) for p in parts))


class Position:
    """Where a reader is: the last transaction of each domain it has (MariaDB's gtid_binlog_pos form)."""

    __slots__ = ("_last",)

    def __init__(self, last: Mapping[int, Gtid] | None = None) -> None:
        self._last: dict[int, Gtid] = dict(last or {})

    @classmethod
    def parse(cls, text: str) -> Position:
        """'0-1-15,1-1-3' (or '' for none) -> Position; ValueError when malformed."""
        found = [parse_gtid(part) for part in text.split(",") if part.strip()]
        return cls({g.domain: g for g in found})

    def __str__(self) -> str:
        return ",".join(str(self._last[d]) for d in sorted(self._last))

    def __repr__(self) -> str:
        return f"Position({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Position) and self._last == other._last

    def __iter__(self) -> Iterator[Gtid]:
        return iter(self._last.values())

    def __bool__(self) -> bool:
        return bool(self._last)

    def copy(self) -> Position:
        return Position(self._last)

    def seq(self, domain: int) -> int:
        """The last sequence number of `domain` (-1: none seen)."""
        found = self._last.get(domain)
        return found.seq if found is not None else -1

    def advance(self, gtid: Gtid) -> None:
        self._last[gtid.domain] = gtid

    def covers(self, other: Position) -> bool:
        """Has this position every transaction `other` has (domain by domain)?"""
        return all(self.seq(g.domain) >= g.seq for g in other)

    def domains(self) -> set[int]:
        return set(self._last)

    def within(self, server: Position) -> tuple[Position, list[Gtid]]:
        """This position as a start on a server whose binlog is at `server`: a domain the server never wrote
        is left out (a Galera node's local domain from another node: its writes never reach this one), and
        a domain only the server has starts at its current end. Returns (the start, the GTIDs left out)."""
        start = {d: g for d, g in self._last.items() if d in server._last}
        for d, g in server._last.items():
            start.setdefault(d, g)
        return Position(start), [g for d, g in self._last.items() if d not in server._last]
