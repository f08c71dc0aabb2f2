"""The Redis record layout of the cache, in one place: entries, lookups, their encoding, and the Lua prelude.

The Lua scripts (proxy/lua/record.lua and the one script each operation runs) read and rewrite the same
records; the numbers they share (format, kinds, sizes) are written into the prelude each script starts
with, from the constants here, so they have this one home.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Iterable

# Record layout: a fixed prefix the Lua scripts read and rewrite, then the entry itself (the "tail"),
# then header lines and the raw body. No JSON of the body: a hit is one slice, not a parse.
# A write fence ("writing", see proxy/lua/record.lua) lists after its prefix the writes in flight.
FORMAT, ENTRY, TOMBSTONE, DROPPED, WRITING = 1, 1, 2, 3, 4
PREFIX = struct.Struct(">BBQQ8s")  # format, kind, epoch, floor (highest version seen), token
META = struct.Struct(">QHdddI")    # version, status, stored_at, fresh_until, stale_until, header bytes
WRITER = struct.Struct(">8sQ")      # in a write fence: writer id, deadline (ms of Redis time)


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached response. Unix times: fresh until `fresh_until`, servable stale until `stale_until`."""
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    version: int
    stored_at: float
    fresh_until: float
    stale_until: float

    def age(self, now: float) -> int:
        return max(0, int(now - self.stored_at))


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one lookup saw; a later fill hands it back so the store can refuse it if anything moved since."""
    entry: Entry | None          # a servable entry of the current epoch, or None (a miss)
    token: bytes                 # the record the key held (b"" for none), compared by the fill
    epoch: int
    generations: tuple[int, ...]  # of the tags asked for, in order
    fenced: bool = False         # the key held a write fence: reopen it before going upstream to fill


def make_entry(status: int, headers: Iterable[tuple[str, str]], body: bytes, *, version: int, now: float,
               ttl: float, grace: float) -> Entry:
    return Entry(status, tuple(headers), body, version, now, now + ttl, now + ttl + grace)


def encode_tail(entry: Entry) -> bytes:
    lines = "\r\n".join(f"{name}: {value}" for name, value in entry.headers)
    encoded = lines.encode("utf-8", "surrogateescape")
    meta = META.pack(entry.version, entry.status, entry.stored_at, entry.fresh_until, entry.stale_until,
                     len(encoded))
    return meta + encoded + entry.body


def new_writer() -> bytes:
    """An id for one write in flight, named in every fence it sets."""
    return os.urandom(8)


def decode(raw: bytes | None, epoch: int) -> tuple[Entry | None, bytes, int]:
    """(the entry if servable in this epoch, the record's token, its kind)."""
    if raw is None or len(raw) < PREFIX.size:
        return None, b"", 0
    fmt, kind, record_epoch, _floor, token = PREFIX.unpack_from(raw)
    if fmt != FORMAT or kind != ENTRY or record_epoch != epoch or len(raw) < PREFIX.size + META.size:
        return None, token, kind
    version, status, stored_at, fresh_until, stale_until, size = META.unpack_from(raw, PREFIX.size)
    start = PREFIX.size + META.size
    headers = []
    if size:
        for line in raw[start:start + size].decode("utf-8", "surrogateescape").split("\r\n"):
            name, _, value = line.partition(": ")
            headers.append((name, value))
    entry = Entry(status, tuple(headers), raw[start + size:], version, stored_at, fresh_until, stale_until)
    return entry, token, kind


def lua_prelude() -> str:
    """The constants every script reads, from this module's layout."""
    return (f"local FORMAT, ENTRY, TOMBSTONE, DROPPED, WRITING = {FORMAT}, {ENTRY}, {TOMBSTONE}, {DROPPED}, "
            f"{WRITING}\nlocal PREFIX_SIZE, WRITER_SIZE = {PREFIX.size}, {WRITER.size}\n")
