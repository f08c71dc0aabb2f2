"""Where the proxy's CPU goes on the hit path: py-spy samples it during an extra cache-on point."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtest.measure import PointSpec
from loadtest.plan import FIXED_CONNECTIONS
from loadtest.progress import say

if TYPE_CHECKING:
    from loadtest.measure import Measurer
    from loadtest.target import Stack

TOP = 15
# Leaf frames are attributed to the package their file belongs to, first match wins.
AREAS = (("/proxy/", "cachegate proxy"), ("/strategies/", "cachegate strategies"), ("/aiohttp/", "aiohttp"),
         ("/redis/", "redis-py"), ("/hiredis/", "redis-py"), ("/jose/", "python-jose"),
         ("/cryptography/", "cryptography"), ("/prometheus_client/", "prometheus-client"),
         ("/logging/", "logging"), ("/multidict/", "multidict"), ("/yarl/", "yarl"), ("/asyncio/", "asyncio"),
         ("uvloop", "uvloop"), ("/json/", "json"), ("<string>", "generated code (dataclass __init__)"))
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")
# The process's start-up chain is in every full stack and says nothing about where the time goes.
BOOTSTRAP = ("<frozen runpy>", "cachegate/cli.py", "proxy/__main__.py", "proxy/server.py")
# uvloop is C: time in its socket reads, writes and callbacks shows up as the Python frame that runs the loop.
EVENT_LOOP = "Runner.run (asyncio/runners.py)"
EVENT_LOOP_AREA = "uvloop event loop (C: sockets, epoll, callbacks)"


def py_spy() -> str | None:
    return shutil.which("py-spy") or next(
        (str(p) for p in [Path(sys.executable).with_name("py-spy")] if p.exists()), None)


def record(measurer: Measurer, stack: Stack, bearer: dict[str, str], processes: tuple[str, ...],
           results_dir: Path) -> dict[str, Any]:
    tool = py_spy()
    if tool is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    members = stack.pids()["proxy"]
    # With workers the group leader only relays admin calls: sample a worker, which serves requests.
    pid = members[-1] if len(members) > 1 else members[0]
    raw = results_dir / "raw" / "profile-proxy.txt"
    seconds = measurer.duration_s
    argv = [tool, "record", "--nonblocking", "-r", "200", "-d", str(seconds), "-p", str(pid), "-f", "raw",
            "-o", str(raw)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        spec = PointSpec("profiled", stack.proxy_url, "get_uniform", FIXED_CONNECTIONS, bearer, processes,
                         warmup=False)
        point = measurer.measure(spec)
        output = proc.communicate(timeout=seconds + 30)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or not raw.exists():
        say(f"py-spy failed: {output[-300:]}")
        return {"error": f"py-spy exited with {proc.returncode}: {output[-300:]}"}
    found = analyse(raw.read_text())
    return {"pid": pid, "seconds": seconds, "connections": FIXED_CONNECTIONS, "rps": point["rps"],
            "proxy_cpu_us_per_request": point["cpu_us_per_request"].get("proxy"),
            "command": " ".join(argv), "raw": measurer.relative(raw), **found}


def _area(frame: str) -> str:
    if frame == EVENT_LOOP:
        return EVENT_LOOP_AREA
    m = _FRAME.match(frame)
    file = "/" + (m.group("file") if m else frame)
    for needle, name in AREAS:
        if needle in file:
            return name
    return Path(file).name or "other"


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m.group("file")
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({file})"


def analyse(collapsed: str) -> dict[str, Any]:
    """Self time per frame, self time per package, inclusive time per frame, as % of the busy samples."""
    self_time: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        # The first frame is the thread (e.g. `process 123:"python"`, `thread (0x..)`): skip it when present.
        frames = [f for f in frames if _FRAME.match(f)]
        if not frames:
            continue
        total += n
        leaf = _short(frames[-1])
        self_time[EVENT_LOOP_AREA if leaf == EVENT_LOOP else leaf] += n
        areas[_area(leaf)] += n
        for frame in {_short(f) for f in frames}:
            if frame != EVENT_LOOP and not any(b in frame for b in BOOTSTRAP):
                inclusive[frame] += n

    def top(counter: Counter[str], key: str, limit: int = TOP) -> list[dict[str, Any]]:
        if not total:
            return []
        return [{key: name, "percent": 100.0 * n / total} for name, n in counter.most_common(limit)]

    return {"samples": total, "top_self": top(self_time, "frame"), "areas": top(areas, "area", 20),
            "top_inclusive": top(inclusive, "frame", 25)}
