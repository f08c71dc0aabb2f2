"""The access log buffers lines and writes them out together."""
from __future__ import annotations

import asyncio
import io

from cachegate import logfiles
from proxy.accesslog import AccessLog


def test_lines_wait_in_memory_until_flushed():
    out = io.StringIO()
    log = AccessLog(out)
    log.write("rid-1", "GET", "/users/1", 200, "GET /users/{id:int}", "cachegate; hit", None, 0.0012)
    assert out.getvalue() == ""
    log.flush()
    line = out.getvalue()
    assert line.endswith("Z access rid-1 GET /users/1 200 route='GET /users/{id:int}' "
                         "cache='cachegate; hit' upstream=- total=1.2ms\n")


def test_a_full_buffer_is_written_at_once(monkeypatch):
    monkeypatch.setattr(logfiles, "FLUSH_LINES", 3)
    out = io.StringIO()
    log = AccessLog(out)
    for n in range(3):
        log.write(f"r{n}", "GET", "/", 200, "r", "c", 0.002, 0.003)
    assert out.getvalue().count("\n") == 3 and "upstream=2.0ms" in out.getvalue()


async def test_run_flushes_when_stopped():
    out = io.StringIO()
    log = AccessLog(out)
    task = asyncio.ensure_future(log.run())
    log.write("r", "GET", "/", 200, "r", "c", None, 0.001)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert out.getvalue().count("\n") == 1
