"""The proxy's access log: one line per request, in text or JSON lines, buffered (cachegate/logfiles.py).

Text: `<time> access <request id> <method> <target> <status> route='...' cache='...' upstream=2.1ms
total=2.5ms`. JSON: one object per line with the same fields (`upstream_ms` null when the request made no
upstream call). The target is the raw request target; no header and no credential is ever written.
"""
from __future__ import annotations

from pathlib import Path
from typing import TextIO

from cachegate.logfiles import AccessLines, LineFile, quoted


class AccessLog:
    def __init__(self, stream: TextIO | None = None, *, path: Path | None = None, fmt: str = "text") -> None:
        self._out = LineFile(path, stream)
        self._lines = AccessLines(self._out, fmt)
        self.format = fmt

    @property
    def stream(self) -> TextIO | None:
        return self._out.stream

    @stream.setter
    def stream(self, stream: TextIO) -> None:
        """Lines go to `stream` from now on (tests read them there)."""
        self._lines.flush()
        self._out.close()
        self._out = self._lines.out = LineFile(stream=stream)

    def write(self, request_id: str, method: str, target: str, status: int, route: str, cache: str,
              upstream: float | None, total: float) -> None:
        lines = self._lines
        stamp = lines.stamp()
        if lines.json:
            spent = "null" if upstream is None else f"{upstream * 1000:.1f}"
            line = (f'{{"time": "{stamp}", "request_id": {quoted(request_id)}, "method": {quoted(method)}, '
                    f'"target": {quoted(target)}, "status": {status}, "route": {quoted(route)}, '
                    f'"cache": {quoted(cache)}, "upstream_ms": {spent}, "total_ms": {total * 1000:.1f}}}\n')
        else:
            spent = "-" if upstream is None else f"{upstream * 1000:.1f}ms"
            line = (f"{stamp} access {request_id} {method} {target} {status} route={route!r} "
                    f"cache={cache!r} upstream={spent} total={total * 1000:.1f}ms\n")
        pending = lines.pending
        pending.append(line)
        if len(pending) >= lines.limit:
            lines.flush()

    def flush(self) -> None:
        self._lines.flush()

    async def run(self) -> None:
        """Flush every second until cancelled, and once more then."""
        await self._lines.run()

    def close(self) -> None:
        self._lines.flush()
        self._out.close()
