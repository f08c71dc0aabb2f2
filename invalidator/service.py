"""The invalidator's event loop: transactions from the reader into cache actions, then the position saved.

Order of work, which is what makes it lose nothing: a batch of transactions is planned (the rules), its
actions are applied (tried again, the position held, until Redis takes them all), only then is the position
moved past them; a task saves the position with the time up to which everything is applied ("synced") in one
Redis note every probe interval. After a restart it resumes from the saved position, so what it applied but
had not saved yet is applied again: every action is idempotent (a version-fenced drop of a key that holds
that version or newer changes nothing; a tag bump drops entries, never serves one). When there is no
position to resume from (first start, Redis lost its data, the binary log was purged past it) the cache
moves to a new epoch before it reads from the server's current position: every entry from before is void.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import Awaitable, Callable

from redis.exceptions import RedisError

from cachegate.invalidations import InvalidatorConfig
from invalidator.changes import Actions, Planner
from invalidator.metrics import InvalidatorMetrics
from invalidator.positions import Position
from invalidator.reader import BinlogReader, Lost, Probe, Source, Transaction, server_position
from proxy.errors import CacheUnavailable
from proxy.lagwatch import NOTE, format_note, parse_note
from proxy.revocations import Revocations
from proxy.store import CacheStore

log = logging.getLogger("cachegate.invalidator")

QUEUE = 2048           # transactions read ahead of what is applied (the reader waits beyond)
BATCH = 512            # transactions planned and applied together
CHUNK = 256            # Redis calls in flight at once
PIPELINE = 128         # keys retired per pipeline (one round trip)
RETRY_FIRST, RETRY_MAX = 0.05, 1.0
PROBES_KEPT = 600      # the probes remembered for the lag of a transaction (a minute at 100 ms)
_REDIS_FAILURES = (CacheUnavailable, RedisError, OSError, TimeoutError)


def read_note(raw: bytes | None) -> tuple[float, Position] | None:
    """(synced, position) of the Redis note (proxy/lagwatch.py), None when absent or unreadable."""
    note = parse_note(raw)
    if note is None:
        return None
    try:
        return note[0], Position.parse(note[1])
    except ValueError:
        return None


class Invalidator:
    def __init__(self, settings: InvalidatorConfig, planner: Planner, source: Source, store: CacheStore,
                 revocations: Revocations, metrics: InvalidatorMetrics, *, marker_ttl: float) -> None:
        self.settings, self.planner, self.source = settings, planner, source
        self.store, self.revocations, self.metrics = store, revocations, metrics
        self.marker_ttl = marker_ttl  # how long a drop marker or tombstone refuses older fills
        self.applied = Position()     # every transaction up to here has its actions applied
        self.synced = 0.0             # every change committed before this time is applied
        self.saved_at = 0.0
        self.reader: BinlogReader | None = None
        self.following = False
        self._probe: Probe | None = None
        self._probes: collections.deque[tuple[float, Position]] = collections.deque(maxlen=PROBES_KEPT)
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._room = threading.BoundedSemaphore(QUEUE)  # items the reader may queue ahead of the applier
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis_down = False
        self._node_index = 0

    # -- the run --------------------------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self.applied = await self._start_position()
        self._start_reader()
        self._probe = Probe(self.source, self.settings.probe_interval, lambda: self._current_node(),
                            self._probed)
        self._probe.start()
        saver = asyncio.create_task(self._save_loop(stopping))
        taker = None
        try:
            while not stopping.is_set():
                taker = asyncio.create_task(self._take())
                halt = asyncio.create_task(stopping.wait())
                done, _ = await asyncio.wait({taker, halt}, return_when=asyncio.FIRST_COMPLETED)
                halt.cancel()
                if taker not in done:
                    taker.cancel()
                    break
                await self._handle(taker.result())
        finally:
            if taker is not None:
                taker.cancel()
            self._stop_threads()
            saver.cancel()
            await asyncio.gather(saver, return_exceptions=True)
            await self._save()  # the last applied position, if Redis takes it

    def _stop_threads(self) -> None:
        if self.reader is not None:
            self.reader.stop()
        if self._probe is not None:
            self._probe.stop()

    def _current_node(self):
        return self.reader.node if self.reader is not None else self.source.nodes[0]

    async def _start_position(self) -> Position:
        note = read_note(await self._until_done("read the position", lambda: self.store.read_note(NOTE)))
        if note is not None and note[1]:
            self.synced = note[0]
            log.info("resuming from position %s", note[1])
            return note[1]
        return await self._new_epoch("no-position", "no saved position (first start, or Redis lost its data)")

    async def _new_epoch(self, reason: str, why: str) -> Position:
        """Read the server's position first, then move the epoch: a change committed after that position is
        read from the log, and every entry filled before the move (whatever it read) is void."""
        position = await self._server_position()
        epoch = await self._until_done("move the epoch", self.store.new_epoch)
        self.metrics.epoch_moves.labels(reason).inc()
        log.warning("%s: cache moved to epoch %s; following the binary log from %s", why, epoch,
                    position or "its start")
        self.applied = position
        await self._until_done("save the position", self._save_now)
        return position

    async def _server_position(self) -> Position:
        delay = RETRY_FIRST
        while True:
            node = self.source.nodes[self._node_index % len(self.source.nodes)]
            try:
                return await asyncio.to_thread(server_position, self.source, node)
            except Exception as exc:  # noqa: BLE001 - any failure to reach the node: the next one
                log.warning("binlog: cannot read the position of %s (%s: %s)", node, type(exc).__name__, exc)
                self.metrics.reconnects.inc()
                self._node_index += 1
                await asyncio.sleep(delay)  # between attempts to reach a node
                delay = min(RETRY_MAX, delay * 2)

    def _start_reader(self) -> None:
        self.reader = BinlogReader(self.source, self.applied, self._deliver, on_connect=self._connected,
                                   on_failure=self._failed, first_node=self._node_index)
        self.reader.start()

    # -- called from the reader's and the probe's threads ---------------------------------------------------

    def _deliver(self, item: object) -> None:
        """From the reader's thread: queue `item` for the loop, waiting while QUEUE items are unapplied (no
        round trip through the loop per transaction: a slot is taken here and given back by `_take`)."""
        while not self._room.acquire(timeout=0.5):
            if self._closed():
                return
        if not self._call_soon(lambda: self._queue.put_nowait(item)):
            self._room.release()

    def _closed(self) -> bool:
        return self._loop is None or self._loop.is_closed() or (self.reader is not None and
                                                                  self.reader.stopping)

    def _connected(self, node) -> None:
        log.info("binlog: following %s from %s", node, self.reader.position if self.reader else "-")
        self._call_soon(lambda: self._set_following(True))

    def _failed(self, node, why: str) -> None:
        log.warning("binlog: lost %s (%s); trying the next node", node, why)
        self._call_soon(lambda: self._set_following(False))
        self.metrics.reconnects.inc()

    def _probed(self, sent: float, position: Position) -> None:
        self._call_soon(lambda: self._probes.append((sent, position)))

    def _call_soon(self, call: Callable[[], None]) -> bool:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(call)
                return True
            except RuntimeError:  # closed meanwhile
                pass
        return False

    def _set_following(self, value: bool) -> None:
        self.following = value
        self.metrics.connected.set(1 if value else 0)

    # -- applying -------------------------------------------------------------------------------------------

    async def _take(self) -> list[object]:
        """The next items in order: at least one, at most BATCH."""
        items = [await self._queue.get()]
        while len(items) < BATCH and not self._queue.empty():
            items.append(self._queue.get_nowait())
        for _ in items:
            self._room.release()
        return items

    async def _handle(self, items: list[object]) -> None:
        batch: list[Transaction] = []
        for item in items:
            if isinstance(item, Transaction):
                batch.append(item)
            elif isinstance(item, Lost):
                await self._apply(batch)
                batch = []
                await self._lost(item)
        await self._apply(batch)

    async def _lost(self, lost: Lost) -> None:
        self._set_following(False)
        self._node_index = self.reader._index if self.reader is not None else self._node_index
        await self._new_epoch("purged", f"binlog: {lost.node} cannot continue from {lost.position} "
                                        f"({lost.message})")
        self._start_reader()

    async def _apply(self, batch: list[Transaction]) -> None:
        if not batch:
            return
        actions = Actions()
        for tx in batch:
            for change in tx.changes:
                self.metrics.events.labels(change.table, change.kind).inc()
                self.planner.plan(change, actions)
        if actions:
            await self._until_done("apply a batch", lambda: self._run_actions(actions))
        now = time.time()
        for tx in batch:
            self.applied.advance(tx.gtid)
            if tx.changes:
                self.metrics.lag.observe(max(0.0, now - self._committed(tx)))
        self.metrics.transactions.inc(len(batch))

    async def _run_actions(self, actions: Actions) -> None:
        calls: list[Callable[[], Awaitable[None]]] = []
        keys = [(key, version, deleted) for key, (version, deleted) in actions.keys.items()]
        for start in range(0, len(keys), PIPELINE):
            calls.append(lambda chunk=keys[start:start + PIPELINE]: self._retire(chunk))
        for tag in actions.tags:
            calls.append(lambda t=tag: self._tag(t))
        for user, below in actions.revocations.items():
            calls.append(lambda u=user, b=below: self._revoke(u, b))
        for start in range(0, len(calls), CHUNK):
            found = await asyncio.gather(*(call() for call in calls[start:start + CHUNK]),
                                         return_exceptions=True)
            for result in found:
                if isinstance(result, BaseException):
                    raise result

    async def _retire(self, chunk: list[tuple[str, int, bool]]) -> None:
        for outcome in await self.store.retire_many(chunk, ttl=self.marker_ttl):
            self.metrics.actions.labels("key", outcome).inc()

    async def _tag(self, tag: str) -> None:
        await self.store.invalidate_tag(tag, linger=self.marker_ttl, recent=self.marker_ttl)
        self.metrics.actions.labels("tag", "bumped").inc()

    async def _revoke(self, user: str, below: int) -> None:
        await self.revocations.publish(user, below)
        self.metrics.actions.labels("revocation", "recorded").inc()

    def _committed(self, tx: Transaction) -> float:
        """When `tx` committed, as well as known: after the binlog's whole-second stamp, and after the last
        probe whose position did not hold it yet (within a probe interval while the invalidator keeps up)."""
        for sent, position in reversed(self._probes):
            if position.seq(tx.gtid.domain) < tx.gtid.seq:
                return max(float(tx.timestamp), sent)
        return float(tx.timestamp)

    async def _until_done(self, what: str, call: Callable[[], Awaitable]) -> object:
        """`call` again and again until Redis takes it: the position does not move meanwhile."""
        delay = RETRY_FIRST
        while True:
            try:
                result = await call()
            except _REDIS_FAILURES as exc:
                self.metrics.redis_retries.inc()
                if not self._redis_down:
                    self._redis_down = True
                    log.warning("Redis unavailable (%s: %s); holding position %s until it answers",
                                type(exc).__name__, exc, self.applied or "-")
                await asyncio.sleep(delay)  # between attempts while Redis is away
                delay = min(RETRY_MAX, delay * 2)
                continue
            if self._redis_down:
                self._redis_down = False
                log.warning("Redis answers again; could %s", what)
            return result

    # -- the position and the sync time ---------------------------------------------------------------------

    async def _save_loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await asyncio.sleep(self.settings.probe_interval)  # the note is written once per probe round
            await self._save()

    async def _save(self) -> None:
        try:
            await self._save_now()
        except _REDIS_FAILURES:
            pass  # the next round tries again; the applier reports Redis's absence

    async def _save_now(self) -> None:
        # The latest probe this position covers: every change committed before it was sent is applied.
        for sent, position in reversed(self._probes):
            if sent <= self.synced:
                break
            if self.applied.covers(position):
                self.synced = sent
                break
        await self.store.write_note(NOTE, format_note(self.synced, str(self.applied)))
        now = time.time()
        self.saved_at = now
        self.metrics.position_age.set(0)
        self.metrics.behind.set(max(0.0, now - self.synced) if self.synced else 0)

    def state(self) -> dict:
        now = time.time()
        return {"following": self.following, "node": str(self._current_node()), "position": str(self.applied),
                "behind_seconds": round(now - self.synced, 3) if self.synced else None,
                "position_age_seconds": round(now - self.saved_at, 3) if self.saved_at else None,
                "queued": self._queue.qsize()}
