"""Connection abuse on raw sockets: idle connections, headers sent a byte at a time, a 100 GB body promised.

Each abusive connection records what the gateway did with it within the window: answered (the status
line), closed it, or held it open; opening it may also fail (the gateway at its limit, or refusing).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

OPEN_TIMEOUT_S = 3.0
OPEN_AT_ONCE = 100        # connections opened concurrently, batch after batch
DRIP_EVERY_S = 2.0        # a slow client's next header line
HUNDRED_GB = 100 * 10**9


@dataclass(frozen=True)
class Plan:
    idle: int            # connections that send nothing
    slow_headers: int    # a request line, then a header line every DRIP_EVERY_S, never the blank line
    big_body: int        # a PATCH with Content-Length: 100 GB, then nothing


@dataclass
class Outcome:
    kind: str
    opened: int = 0
    open_failed: Counter = field(default_factory=Counter)   # why a connect failed
    answered: Counter = field(default_factory=Counter)      # status of an answer the gateway sent
    closed: int = 0                                          # closed by the gateway without an answer
    closed_after_s: list[float] = field(default_factory=list)
    held: int = 0                                            # still open at the end of the window

    def as_json(self) -> dict[str, object]:
        after = sorted(self.closed_after_s)
        return {"kind": self.kind, "opened": self.opened, "open_failed": dict(self.open_failed),
                "answered": {str(k): v for k, v in self.answered.items()}, "closed": self.closed,
                "closed_after_s_median": after[len(after) // 2] if after else None, "held": self.held}


class Abuse:
    """Opens the plan's connections against host:port and keeps each going until `stop()`."""

    def __init__(self, port: int, plan: Plan, authorization: str, user_id: int) -> None:
        self.port, self.plan = port, plan
        self.authorization, self.user_id = authorization, user_id
        self.outcomes = {kind: Outcome(kind) for kind in ("idle", "slow_headers", "big_body")}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def _first_bytes(self, kind: str) -> bytes:
        if kind == "slow_headers":
            return f"GET /users/{self.user_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        if kind == "big_body":
            return (f"PATCH /users/{self.user_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: {self.authorization}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {HUNDRED_GB}\r\n\r\n").encode()
        return b""

    async def start(self) -> None:
        """Open every connection (in batches); returns once all are open or have failed to open."""
        kinds = (["idle"] * self.plan.idle + ["slow_headers"] * self.plan.slow_headers
                 + ["big_body"] * self.plan.big_body)
        for at in range(0, len(kinds), OPEN_AT_ONCE):
            opened = await asyncio.gather(*(self._open(kind) for kind in kinds[at:at + OPEN_AT_ONCE]))
            for kind, pair in zip(kinds[at:at + OPEN_AT_ONCE], opened):
                if pair is not None:
                    self._tasks.append(asyncio.create_task(self._keep(kind, *pair)))

    async def _open(self, kind: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port),
                                                    OPEN_TIMEOUT_S)
            first = self._first_bytes(kind)
            if first:
                writer.write(first)
                await writer.drain()
        except (OSError, asyncio.TimeoutError) as exc:
            self.outcomes[kind].open_failed[type(exc).__name__] += 1
            return None
        self.outcomes[kind].opened += 1
        return reader, writer

    async def _keep(self, kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        outcome = self.outcomes[kind]
        opened = time.monotonic()
        read = asyncio.create_task(reader.readline())
        stop = asyncio.create_task(self._stop.wait())
        try:
            while True:
                tick = DRIP_EVERY_S if kind == "slow_headers" else None
                done, _ = await asyncio.wait({read, stop}, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
                if read in done:
                    line = read.result() if not read.exception() else b""
                    if line.startswith(b"HTTP/"):
                        parts = line.split()
                        outcome.answered[int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0] += 1
                    else:
                        outcome.closed += 1
                        outcome.closed_after_s.append(time.monotonic() - opened)
                    return
                if stop in done:
                    outcome.held += 1
                    return
                writer.write(b"X-Slow: 1\r\n")   # one more header line: the request is still coming
                await writer.drain()
        except OSError:
            outcome.closed += 1
            outcome.closed_after_s.append(time.monotonic() - opened)
        finally:
            for task in (read, stop):
                task.cancel()
            writer.close()

    async def stop(self) -> dict[str, dict[str, object]]:
        """Close every abusive connection still open; what the gateway did with each kind."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return {kind: outcome.as_json() for kind, outcome in self.outcomes.items()}
