"""A loopback TCP relay before a real MariaDB that a test can break, stop or silence, as a node going away."""
from __future__ import annotations

import asyncio
import contextlib

# A MySQL client packet: 3 bytes of length, 1 of sequence, then COM_QUERY (3) and the statement.
_COMMIT = b"\x03COMMIT"


class TcpRelay:
    """Forwards every connection to (host, port). Faults: `break_silently()` (open connections die on their
    next query), `cut_after_commit()` (the next COMMIT reaches the server, its answer never comes back),
    `black_hole()` (connections are accepted and nothing is forwarded: a hung server), `stop()`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.accepted = 0
        self.commits_cut = 0
        self._server: asyncio.Server | None = None
        self._links: dict[asyncio.StreamWriter, asyncio.StreamWriter] = {}  # client side -> server side
        self._doomed: set[asyncio.StreamWriter] = set()
        self._cut_commit = False
        self._silent = False
        self._held: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._silent = False
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def break_silently(self) -> None:
        """Open connections look alive (no EOF) but die on their next query: what a pool meets after a
        server restart it has not noticed yet."""
        self._doomed |= set(self._links)

    def cut_after_commit(self) -> None:
        """The next COMMIT of any connection is forwarded, then that client's side is closed: the server
        commits, the client never learns it."""
        self._cut_commit = True

    def black_hole(self) -> None:
        """From now on: open connections and new ones are held open, nothing goes either way."""
        self._silent = True

    def heal(self) -> None:
        self._silent = False
        for writer in self._held:
            writer.close()
        self._held.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for client, server in list(self._links.items()):
                client.close()
                server.close()
            self._links.clear()
            self.heal()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._silent:
            self._held.append(writer)  # accepted by the kernel, and then nothing: a SIGSTOPped server
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._links[writer] = up_writer
        await asyncio.gather(self._pump(reader, up_writer, client=writer), self._pump(up_reader, writer))
        self._links.pop(writer, None)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    client: asyncio.StreamWriter | None = None) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if client is not None and client in self._doomed:
                    client.close()
                    break
                if self._silent:
                    continue
                writer.write(data)
                await writer.drain()
                if client is not None and self._cut_commit and _COMMIT in data:
                    self._cut_commit = False
                    self.commits_cut += 1
                    # The server side stays open, so the server reads the COMMIT and commits.
                    self._links.pop(client, None)
                    client.close()
                    self._doomed.add(client)
        writer.close()
