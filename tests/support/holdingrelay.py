"""An HTTP relay before a service that can hold one answer back: a slow upstream a test controls."""
from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from stack.net import free_port

_HOP = {"transfer-encoding", "connection", "keep-alive", "content-length", "content-encoding"}


class HoldingRelay:
    """Forwards everything to `target`. `hold(path)`: the next GET of `path` is fetched at once (the
    service reads the row then), `fetched` is set, and its answer waits for `release()`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.target = ""
        self.fetched = asyncio.Event()
        self._release = asyncio.Event()
        self._held: str | None = None
        self._method = "GET"
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self, path: str) -> None:
        self.hold_method("GET", path)

    def hold_method(self, method: str, path: str) -> None:
        """The next `method` request of `path` is sent on at once, and its answer waits for release()."""
        self._method = method
        self._held = path
        self.fetched.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def stop(self) -> None:
        self._release.set()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None and self.target
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP and k.lower() != "host"}
        async with self._session.request(request.method, self.target + request.raw_path, headers=headers,
                                         data=body or None) as resp:
            payload = await resp.read()
            answer = [(k, v) for k, v in resp.headers.items() if k.lower() not in _HOP]
            status = resp.status
        if request.method == self._method and request.path == self._held:
            self._held = None
            self.fetched.set()
            await self._release.wait()
        return web.Response(status=status, body=payload, headers=answer)
