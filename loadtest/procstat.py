"""What /proc says: CPU time of the stack's processes, the machine, software versions, and CPU pinning."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Mapping

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def snapshot(pids: Mapping[str, list[int]]) -> dict[str, float]:
    """CPU seconds per named process group (processes that vanished count as zero)."""
    return {name: sum(cpu_seconds(pid) or 0.0 for pid in group) for name, group in pids.items()}


def per_request_us(before: Mapping[str, float], after: Mapping[str, float],
                   requests: int) -> dict[str, float]:
    if requests <= 0:
        return {name: 0.0 for name in after}
    return {name: (after[name] - before.get(name, 0.0)) * 1e6 / requests for name in after}


def pin(pids: list[int], cpus: set[int]) -> dict[int, set[int]]:
    """Pin every thread of the processes to `cpus`; returns what each process had, for unpin()."""
    previous: dict[int, set[int]] = {}
    for pid in pids:
        try:
            previous[pid] = os.sched_getaffinity(pid)
        except OSError:
            continue
        _set_all_threads(pid, cpus)
    return previous


def unpin(previous: Mapping[int, set[int]]) -> None:
    for pid, cpus in previous.items():
        _set_all_threads(pid, cpus)


def _set_all_threads(pid: int, cpus: set[int]) -> None:
    # sched_setaffinity acts on one thread: walk them all (uvloop and the executors start their own).
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass  # the thread ended meanwhile


def machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1),
            "kernel": platform.release(), "os": _os_name(), "load_average": list(os.getloadavg())}


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def software(wrk_version: str) -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"python": sys.version.split()[0], "aiohttp": dist("aiohttp"), "redis-py": dist("redis"),
            "hiredis": dist("hiredis"), "uvloop": dist("uvloop"), "aiomysql": dist("aiomysql"),
            "wrk": wrk_version, "redis-server": _first_line(["redis-server", "--version"]),
            "mariadbd": _first_line(["mariadbd", "--version"])}
