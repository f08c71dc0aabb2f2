"""How far behind the cache invalidator is, as each gateway process learns it: one Redis GET per interval.

The invalidator writes a note, `<prefix>:n:cdc` = "<synced> <position>": every change committed to the
database before the Unix time `synced` has had its cache actions applied. A process reads it every
`invalidator.check_interval` in a task of its own (the hit path reads only a boolean), and while `synced`
is more than `invalidator.lag_bound` ago (the last note read, when Redis does not answer), or there is no
note, the routes the rules cover bypass the cache (`Cache-Status: ...; detail=INVALIDATOR-BEHIND`): a change the invalidator has not
applied yet may be cached stale there. Staleness stays bounded by lag_bound + check_interval even then.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from proxy.errors import CacheUnavailable
from proxy.store import CacheStore

log = logging.getLogger("cachegate.lagwatch")
NOTE = "cdc"


def format_note(synced: float, position: str) -> str:
    return f"{synced:.6f} {position}"


def parse_note(raw: bytes | str | None) -> tuple[float, str] | None:
    """(synced, position text) of the note; None when absent or unreadable."""
    if raw is None:
        return None
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    synced, _, position = text.partition(" ")
    try:
        return float(synced), position
    except ValueError:
        return None


class LagWatch:
    """Calls `on_change(behind)` whenever the invalidator passes its bound, either way (and once at start)."""

    def __init__(self, store: CacheStore, *, bound: float, interval: float,
                 on_change: Callable[[bool], None], clock: Callable[[], float] = time.time) -> None:
        self._store, self._bound, self._interval = store, bound, interval
        self._on_change, self._clock = on_change, clock
        self.behind: bool | None = None
        self.lag: float | None = None  # seconds, as last read (None: no note)
        self._synced: float | None = None

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)  # the next read of the note, not a synchronisation

    async def check(self) -> None:
        try:
            # A longer time-out than a lookup's: under a burst the loop may answer late, and a read that
            # failed must not be what turns the cache off (every bypass adds to the burst).
            note = parse_note(await self._store.read_note(NOTE, timeout=max(1.0, 5 * self._interval)))
            self._synced = None if note is None or note[0] <= 0 else note[0]
        except CacheUnavailable:
            pass  # Redis does not answer: lookups bypass by themselves; the last note read ages meanwhile
        self.lag = None if self._synced is None else self._clock() - self._synced
        behind = self.lag is None or self.lag > self._bound
        if behind != self.behind:
            if self.behind is not None or behind:
                log.warning("invalidator %s (lag %s, bound %gs): the routes its rules cover %s",
                            "behind" if behind else "caught up",
                            "unknown" if self.lag is None else f"{self.lag:.3f}s", self._bound,
                            "bypass the cache" if behind else "use the cache again")
            self.behind = behind
            self._on_change(behind)
