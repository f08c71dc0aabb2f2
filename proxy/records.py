"""The Redis record layout of the cache, in one place: entries, lookups, their encoding, and the Lua prelude.

The Lua scripts (proxy/lua/record.lua and the one script each operation runs) read and rewrite the same
records; the numbers they share (format, kinds, sizes) are written into the prelude each script starts
with, from the constants here, so they have this one home.
"""
from __future__ import annotations

import dataclasses
import os
import struct
from dataclasses import dataclass
from typing import Iterable

# Record layout: a fixed prefix the Lua scripts read and rewrite, then the entry itself (the "tail"): its
# meta, header lines, the tags it is indexed under (for `explain`; a hit skips them) and the raw body. No
# JSON of the body: a hit is one slice, not a parse.
# A write fence ("writing", see proxy/lua/record.lua) lists after its prefix the writes in flight. A lease
# is the record a miss on an empty key writes before it goes upstream: its token is what the fill compares,
# and another gateway process that finds it waits for that fill instead of fetching too.
# Format 2 added the tags; a record of another format is a miss (and is replaced by the next fill).
FORMAT, ENTRY, TOMBSTONE, DROPPED, WRITING, LEASE = 2, 1, 2, 3, 4, 5
KINDS = {ENTRY: "entry", TOMBSTONE: "tombstone", DROPPED: "dropped", WRITING: "fence", LEASE: "lease"}
PREFIX = struct.Struct(">BBQQ8s")  # format, kind, epoch, floor (highest version seen), token
META = struct.Struct(">QHdddIH")   # version, status, stored_at, fresh_until, stale_until, header, tag bytes
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
    tags: tuple[str, ...] = ()  # written with the entry; `decode` (the hit path) leaves them unread

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
    leased: bool = False         # the key held another fill's lease: that fill is under way

    @property
    def state(self) -> tuple[int, bytes, tuple[int, ...]]:
        """What the key and its tags were at this lookup: any write since has changed it."""
        return self.epoch, self.token, self.generations


def make_entry(status: int, headers: Iterable[tuple[str, str]], body: bytes, *, version: int, now: float,
               ttl: float, grace: float, tags: Iterable[str] = ()) -> Entry:
    return Entry(status, tuple(headers), body, version, now, now + ttl, now + ttl + grace, tuple(tags))


def encode_tail(entry: Entry) -> bytes:
    lines = "\r\n".join(f"{name}: {value}" for name, value in entry.headers)
    encoded = lines.encode("utf-8", "surrogateescape")
    tags = " ".join(entry.tags).encode()
    meta = META.pack(entry.version, entry.status, entry.stored_at, entry.fresh_until, entry.stale_until,
                     len(encoded), len(tags))
    return meta + encoded + tags + entry.body


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
    version, status, stored_at, fresh_until, stale_until, size, tagged = META.unpack_from(raw, PREFIX.size)
    start = PREFIX.size + META.size
    headers = []
    if size:
        for line in raw[start:start + size].decode("utf-8", "surrogateescape").split("\r\n"):
            name, _, value = line.partition(": ")
            headers.append((name, value))
    entry = Entry(status, tuple(headers), raw[start + size + tagged:], version, stored_at, fresh_until,
                  stale_until)
    return entry, token, kind


@dataclass(frozen=True, slots=True)
class Record:
    """Everything a record says, read whole (for `explain`, not on the hit path)."""
    kind: str                      # entry, tombstone, dropped, fence, or "other-format"
    epoch: int
    floor: int                     # the highest version the key has seen
    size: int                      # bytes of the whole record
    entry: Entry | None            # the response, for an entry (whatever its epoch)
    writers: tuple[tuple[bytes, int], ...] = ()  # a fence's writes: (writer id, deadline ms of Redis time)


def read_record(raw: bytes) -> Record | None:
    """A record as the scripts see it, with the entry's tags; None when the key holds nothing readable."""
    if len(raw) < PREFIX.size:
        return None
    fmt, kind, epoch, floor, _token = PREFIX.unpack_from(raw)
    if fmt != FORMAT:
        return Record("other-format", epoch, floor, len(raw), None)
    entry, writers = None, ()
    if kind == ENTRY and len(raw) >= PREFIX.size + META.size:
        entry = decode(raw, epoch)[0]
        size, tagged = META.unpack_from(raw, PREFIX.size)[5:]
        at = PREFIX.size + META.size + size
        if entry is not None and tagged:
            entry = dataclasses.replace(entry, tags=tuple(raw[at:at + tagged].decode().split(" ")))
    elif kind == WRITING:
        writers = tuple(WRITER.unpack_from(raw, at) for at in range(PREFIX.size, len(raw) - WRITER.size + 1,
                                                                    WRITER.size))
    return Record(KINDS.get(kind, f"kind-{kind}"), epoch, floor, len(raw), entry, writers)


def lua_prelude() -> str:
    """The constants every script reads, from this module's layout."""
    return (f"local FORMAT, ENTRY, TOMBSTONE, DROPPED, WRITING, LEASE = {FORMAT}, {ENTRY}, {TOMBSTONE}, "
            f"{DROPPED}, {WRITING}, {LEASE}\nlocal PREFIX_SIZE, WRITER_SIZE = {PREFIX.size}, {WRITER.size}\n")
