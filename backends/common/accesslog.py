"""Each service's access log: one line per request it answered, buffered as the proxy's (cachegate/logfiles).

Text: `<time> access <request id> <method> <target> <status> service=users total=1.2ms`; JSON: one object
per line with the same fields. The request id is the one the gateway sent (X-Request-Id), so a line here
and the gateway's line for the same request share it. Written to `<logging.access_dir>/<service>-access.log`
(or standard output), reopened on SIGUSR1; off with `services.<name>.access_log: false`.
"""
from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from cachegate.config import Config
from cachegate.logfiles import AccessLines, LineFile, quoted

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # anything else is not written (it could forge a line)


class ServiceAccessLog:
    """The lines of one service; opened when its app starts, closed when it stops."""

    def __init__(self, config: Config, service: str) -> None:
        self.config, self.service = config, service
        self.lines: AccessLines | None = None

    def write(self, request: web.Request, status: int, seconds: float) -> None:
        lines = self.lines
        if lines is None:
            return
        rid = request.headers.get("X-Request-Id", "-")
        if not _REQUEST_ID.fullmatch(rid):
            rid = "-"
        stamp = lines.stamp()
        if lines.json:
            lines.add(f'{{"time": "{stamp}", "request_id": "{rid}", "service": "{self.service}", "method": '
                      f'{quoted(request.method)}, "target": {quoted(request.raw_path)}, "status": {status}, '
                      f'"total_ms": {seconds * 1000:.1f}}}\n')
        else:
            lines.add(f"{stamp} access {rid} {request.method} {request.raw_path} {status} "
                      f"service={self.service} total={seconds * 1000:.1f}ms\n")

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: open the file and flush it once a second while the service runs."""
        path = self.config.logging.access_file(self.service)
        out = LineFile(path, None if path is not None else sys.stdout)
        self.lines = AccessLines(out, self.config.logging.access_format)
        flusher = asyncio.get_running_loop().create_task(self.lines.run())
        try:
            yield
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)  # it writes its last lines
            out.close()
            self.lines = None


def access_middleware(log: ServiceAccessLog) -> Middleware:
    """Outermost: it sees the status every other middleware settled on, errors included."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            log.write(request, status, time.perf_counter() - started)

    return middleware
