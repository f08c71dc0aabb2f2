"""A listening socket with its own accept loop around aiohttp's protocol: header deadline, connection limit.

aiohttp closes a connection that has no complete request head `keepalive_timeout` after its opening or its
last answer, and reads a body as slowly as it comes (the handler bounds that: proxy/handler.py). It has no
shorter deadline for a head that dribbles in, no cap on connections, and at the file-descriptor limit the
event loop accepts and drops every new connection. So the proxy accepts by itself:

- Header deadline: a request head must be complete `header_timeout` after the connection opened, or after
  the first byte that follows the previous answer; else the connection gets a 408 with the JSON error (or,
  if it sent nothing, is closed without a word). A head ends at its first empty line, which is found in
  what arrives while no request is in progress (a head holds no empty line before its end); an answer's end
  is aiohttp's access-log call, the one public hook it has there.
- Connection limit: min(max_connections, the soft RLIMIT_NOFILE minus what the upstream pools and Redis
  clients may hold), the file limit read at every accept (prlimit may change it from outside). At the
  limit, the connection that has waited longest for a request, if that is SHED_IDLE or more, is closed to
  make room; when none has, the new connection gets 503 with Retry-After and is closed. The start and the
  end of such an episode are logged once each.
- Accept failing for want of descriptors (EMFILE and its kin: something else holds more than the reserve):
  the connections open then, less FILE_MARGIN, become the limit while the file limit stays; room is made
  the same way, and failing that nothing is accepted until a connection closes (the kernel keeps new
  ones in the backlog). The same episode, logged once.

Pipelined requests are handled by aiohttp as ever; one that was read with the request before it is not
seen here, so at the limit its connection may be taken for idle (HTTP clients no longer pipeline).
"""
from __future__ import annotations

import asyncio
import collections
import errno
import json
import logging
import resource
import socket
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger("cachegate.listener")

SHED_IDLE = 2.0          # seconds a connection must have waited for a request before it may be shed
REFUSE_LINGER = 1.0      # seconds a refused connection is kept to deliver its 503 before the close
REFUSING_AT_ONCE = 64    # refusals lingering at once; each holds a descriptor, so past this the oldest goes
ACCEPT_PAUSE = 0.5       # longest pause of the accept loop when descriptors ran out and nothing was shed
EPISODE_END = 0.9        # an episode at the limit ends when the open connections fall below this share
FILE_MARGIN = 16         # connections fewer than where accept ran out of descriptors (at most a quarter):
                         # room for the 503s and the upstream connections
_SCARCE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def _answer(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n")
    return head.encode() + body


REQUEST_TIMEOUT = _answer(408, "Request Timeout", "request_timeout", "the request headers took too long")
BUSY = _answer(503, "Service Unavailable", "connection_limit",
               "the gateway is at its connection limit; try again", "Retry-After: 1\r\n")


@dataclass(frozen=True, slots=True)
class Bounds:
    """What one listener enforces; `reserve` is how many descriptors the rest of the process may need."""
    header_timeout: float
    max_connections: int
    reserve: int


class AnswerHook(AbstractAccessLogger):
    """Given to aiohttp as its access logger class: each RequestHandler has one, which tells the connection
    that an answer was written. It logs nothing (the gateway writes its own access log)."""

    __slots__ = ("connection",)

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self.connection: Connection | None = None

    def log(self, request: Any, response: Any, time: float) -> None:
        if self.connection is not None:
            self.connection.answered()


class Connection(asyncio.Protocol):
    """One client connection: aiohttp's RequestHandler inside, the head deadline around it."""

    __slots__ = ("_listener", "_handler", "_transport", "_loop", "_timer", "_head", "_tail", "busy",
                 "waiting_since")

    def __init__(self, listener: Listener, handler: Any) -> None:
        self._listener = listener
        self._handler = handler  # aiohttp.web_protocol.RequestHandler
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._head = 0        # bytes of the next head received so far
        self._tail = b""      # its last two bytes, so an empty line split between two reads is found
        self.busy = False     # a head is complete and its answer not yet written
        self.waiting_since = 0.0
        hook = getattr(handler, "access_logger", None)
        if isinstance(hook, AnswerHook):
            hook.connection = self

    # -- asyncio.Protocol, delegated to aiohttp ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._listener.opened(self)
        self._arm()  # the first head's deadline runs from the opening: a silent connection is bounded too
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            self._look(data)
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        self._listener.lost(self)
        self._handler.connection_lost(exc)

    # -- the head deadline -----------------------------------------------------------------------------

    def answered(self) -> None:
        """An answer was written: the connection waits for its next request (aiohttp bounds the idle time)."""
        self.busy = False
        self._head, self._tail = 0, b""
        self.waiting_since = self._loop.time()
        self._listener.waiting(self)

    def _look(self, data: bytes) -> None:
        if not self._head:
            data = data.lstrip(b"\r\n")  # RFC 9112 2.2: empty lines before a request line are ignored
            if not data:
                return
        seen = self._tail + data if self._tail else data
        if b"\n\n" in seen or b"\n\r\n" in seen:
            self.busy = True
            self._head, self._tail = 0, b""
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._listener.working(self)
            return
        self._head += len(data)
        self._tail = seen[-2:]
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        self._timer = self._loop.call_at(self._loop.time() + self._listener.bounds.header_timeout, self._late)

    def _late(self) -> None:
        self._timer = None
        if not self.busy:
            self.close("header_timeout", REQUEST_TIMEOUT if self._head else b"")

    def close(self, reason: str, answer: bytes = b"") -> None:
        """Close the connection (the answer, if any, is written first); aiohttp hears connection_lost."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if answer:
            transport.write(answer)
        self._listener.count_closed(reason)
        transport.close()

    @property
    def partial(self) -> bool:
        """Some of a request head has arrived (a 503 then says why the connection closes)."""
        return self._head > 0


class _Refused(asyncio.Protocol):
    """A connection over the limit: a 503, the end of the stream, the close once the client has read it."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._listener.lingering.append(self)
        transport.write(BUSY)  # type: ignore[attr-defined]
        if transport.can_write_eof():  # type: ignore[attr-defined]
            transport.write_eof()  # type: ignore[attr-defined]
        self._timer = asyncio.get_running_loop().call_later(REFUSE_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # the request it sent meanwhile: read and dropped, so closing does not reset the answer

    def eof_received(self) -> bool:
        return False  # the client has closed its side: close ours

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._listener.refusing -= 1
        try:
            self._listener.lingering.remove(self)
        except ValueError:
            pass


@dataclass(slots=True)
class _Episode:
    started: float
    limit: int
    shed: int = 0
    refused: int = 0


class Listener:
    """Accepts on `sock` and serves each connection with `make_handler()` (aiohttp's `runner.server`)."""

    def __init__(self, sock: socket.socket, make_handler: Callable[[], Any], bounds: Bounds, *,
                 name: str = "proxy", on_close: Callable[[str], None] | None = None) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.bounds = bounds
        self.name = name
        self.refusing = 0
        self.lingering: collections.deque[_Refused] = collections.deque()  # oldest first
        self._make_handler = make_handler
        self._on_close = on_close
        self._open: set[Connection] = set()
        # Connections waiting for a request, in the order they began to wait (a dict keeps it): the first is
        # the one that has waited longest.
        self._waiting: dict[Connection, None] = {}
        self._task: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._limit = bounds.max_connections
        self._episode: _Episode | None = None
        self._learned: tuple[int, int] | None = None  # (file limit, connections) where accept ran out

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._accept())

    async def close(self) -> None:
        """Stop accepting (the socket closes); open connections are aiohttp's to finish."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.sock.close()

    # -- bookkeeping, called by the connections ---------------------------------------------------------

    def opened(self, conn: Connection) -> None:
        self._open.add(conn)
        conn.waiting_since = asyncio.get_running_loop().time()
        self._waiting[conn] = None

    def waiting(self, conn: Connection) -> None:
        self._waiting.pop(conn, None)
        self._waiting[conn] = None

    def working(self, conn: Connection) -> None:
        self._waiting.pop(conn, None)

    def lost(self, conn: Connection) -> None:
        self._open.discard(conn)
        self._waiting.pop(conn, None)
        self._room.set()
        episode = self._episode
        if episode is not None and len(self._open) < EPISODE_END * episode.limit:
            self._episode = None
            took = asyncio.get_running_loop().time() - episode.started
            log.warning("%s: below the connection limit again after %.1fs (%d idle connection(s) closed, "
                        "%d refused with 503)", self.name, took, episode.shed, episode.refused)

    def count_closed(self, reason: str) -> None:
        if self._on_close is not None:
            self._on_close(reason)

    # -- accepting -------------------------------------------------------------------------------------

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(self.sock)
            except OSError as exc:
                if exc.errno not in _SCARCE:
                    continue  # the client gave up before the accept (ECONNABORTED and the like)
                self._out_of_files(exc)
                if not self._shed():
                    # The new connection waits in the backlog until one of ours closes (or a while).
                    self._room.clear()
                    try:
                        await asyncio.wait_for(self._room.wait(), ACCEPT_PAUSE)
                    except TimeoutError:
                        pass
                continue
            await self._admit(loop, sock)

    async def _admit(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self._open) >= self._current_limit():
            self._at_limit(loop, "connection limit reached")
            if not self._shed():
                self._refuse(loop, sock)
                return
        try:
            await loop.connect_accepted_socket(lambda: Connection(self, self._make_handler()), sock)
        except OSError:
            sock.close()  # the client went away before its transport was made

    def _current_limit(self) -> int:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = self.bounds.max_connections
        if soft != resource.RLIM_INFINITY:
            # At least half of the descriptors stay for clients, however large the reserve.
            limit = min(limit, soft - min(self.bounds.reserve, soft // 2))
            if self._learned is not None and self._learned[0] == soft:
                limit = min(limit, self._learned[1])
        self._limit = max(1, limit)
        return self._limit

    def _at_limit(self, loop: asyncio.AbstractEventLoop, what: str) -> None:
        if self._episode is not None:
            self._episode.limit = min(self._episode.limit, self._limit)
        else:
            self._episode = _Episode(loop.time(), self._limit)
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            log.warning("%s: %s: %d open (limit %d: max_connections %d, file limit %s less %d kept for "
                        "upstreams and Redis); closing connections idle %gs or more, answering 503 to new "
                        "ones when none is", self.name, what, len(self._open), self._limit,
                        self.bounds.max_connections, soft, self.bounds.reserve, SHED_IDLE)

    def _out_of_files(self, exc: OSError) -> None:
        """Accept failed for want of descriptors: what is open now is the limit while the file limit stays
        (less a margin for the 503s and the upstream connections), and an episode starts."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        opened = len(self._open)
        self._learned = (soft, max(1, opened - min(FILE_MARGIN, opened // 4)))
        self._current_limit()
        self._at_limit(asyncio.get_running_loop(),
                       f"out of file descriptors ({errno.errorcode.get(exc.errno or 0, exc.errno)})")

    def _shed(self) -> bool:
        """Close the connection that has waited longest for a request, if it has waited SHED_IDLE."""
        oldest = next(iter(self._waiting), None)
        if oldest is None or asyncio.get_running_loop().time() - oldest.waiting_since < SHED_IDLE:
            return False
        self._waiting.pop(oldest, None)
        if self._episode is not None:
            self._episode.shed += 1
        oldest.close("shed", BUSY if oldest.partial else b"")
        return True

    def _refuse(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        if self._episode is not None:
            self._episode.refused += 1
        self.count_closed("refused")
        if self.refusing >= REFUSING_AT_ONCE and self.lingering:
            # The oldest refusal has had its 503 for the longest (a client that has not read it by now is
            # most likely one that never reads): it makes room for the newcomer, who gets its 503 too.
            oldest = self.lingering.popleft()
            if oldest.transport is not None:
                oldest.transport.close()
        elif self.refusing >= REFUSING_AT_ONCE:
            sock.close()   # every refusal is still being made: nothing to close yet
            return
        self.refusing += 1

        async def refuse() -> None:
            try:
                await loop.connect_accepted_socket(lambda: _Refused(self), sock)
            except OSError:
                self.refusing -= 1
                sock.close()

        loop.create_task(refuse())


def raise_file_limit() -> tuple[int, int]:
    """The soft RLIMIT_NOFILE raised to the hard one (what a process may do by itself); (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the file limit from %s to %s: %s", soft, hard, exc)
    return soft, hard


def bind(host: str, port: int, *, backlog: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket (IPv4 or IPv6 by the host), SO_REUSEADDR, and SO_REUSEPORT for workers."""
    return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                backlog=backlog, reuse_port=reuse_port)
