"""A real headless Chromium (Debian's package) driven over DevTools: navigate, run a script, screenshot.

The flags are those this machine's closed network needs: without the background-networking ones Chromium
keeps trying to reach Google's hosts. Each browser has a user-data folder of its own and is stopped by its
process group, which holds every process it started.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp

from tests.support.polling import poll

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,900", "--remote-debugging-port=0")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: `./run test` installs it (Debian package chromium)"
    return found


class Browser:
    """One page of a running Chromium, with the events it sent (Page.loadEventFired, ...)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self.events: list[dict[str, Any]] = []
        self._event = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self.events.append(data)
                self._event.set()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future = self._waiting[call_id] = asyncio.get_running_loop().create_future()
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        assert "error" not in answer, answer
        return answer.get("result", {})

    async def wait_for(self, event: str, after: int, deadline: float = 30.0) -> dict[str, Any]:
        """The first `event` after the first `after` events seen (`deadline` only guards against a hang)."""
        found: list[dict[str, Any]] = []

        async def seen() -> bool:
            found[:] = [e for e in self.events[after:] if e["method"] == event][:1]
            if not found:
                self._event.clear()
                try:
                    await asyncio.wait_for(self._event.wait(), 0.5)   # woken by the next event
                except TimeoutError:
                    pass
            return bool(found)

        assert await poll(seen, deadline, interval=0), f"chromium sent no {event}"
        return found[0]

    async def navigate(self, url: str) -> None:
        seen = len(self.events)
        await self.call("Page.navigate", url=url)
        await self.wait_for("Page.loadEventFired", seen)

    async def evaluate(self, expression: str) -> Any:
        found = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in found, found
        return found["result"].get("value")

    async def screenshot(self) -> bytes:
        return base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"])


@asynccontextmanager
async def headless_chromium(folder: Path) -> AsyncIterator[Browser]:
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "chromium.log").open("wb")
    proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={folder / 'profile'}", "about:blank"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = folder / "profile" / "DevToolsActivePort"
        async def port_written() -> bool:
            assert proc.poll() is None, (folder / "chromium.log").read_text()[-2000:]
            return port_file.exists() and port_file.read_text().count("\n") >= 1

        assert await poll(port_written, 60), "chromium did not open its DevTools port"
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in await resp.json() if t["type"] == "page"]
            page = pages[0]["webSocketDebuggerUrl"]
            async with http.ws_connect(page, max_msg_size=64 * 1024 * 1024) as ws:
                browser = Browser(ws)
                await browser.call("Page.enable")
                yield browser
                browser._reader.cancel()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its group: the renderers and helpers it started
        proc.wait(timeout=30)
        log.close()
