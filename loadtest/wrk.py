"""Running wrk: the exact command line, its raw output kept on disk, the scripts' JSON summary line parsed."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

SCRIPTS = Path(__file__).resolve().parent
SUMMARY_KEY = "cachegate_wrk"
# wrk sleeps for the whole duration before it looks at its threads: allow that plus its start and report.
GRACE_S = 15.0


class WrkError(RuntimeError):
    """wrk is missing, or could not be run at all."""


@dataclass
class WrkResult:
    """One wrk run: what was asked, what wrk printed, and what it cost on the client side."""

    argv: list[str]
    returncode: int
    raw: str
    summary: dict[str, Any] | None
    wall_s: float
    client_cpu_s: float
    problems: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def requests(self) -> int:
        return int(self.summary["requests"]) if self.summary else 0

    @property
    def duration_s(self) -> float:
        return self.summary["duration_us"] / 1e6 if self.summary else self.wall_s

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.summary and self.duration_s > 0 else 0.0

    @property
    def valid(self) -> bool:
        return not self.problems


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed (Debian: apt-get install wrk)")
    return found


def version() -> str:
    out = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True, timeout=10)
    text = (out.stdout or out.stderr).strip()
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer": the version and the event backend.
    return text.splitlines()[0].split(" Copyright")[0] if text else "unknown"


def command(url: str, script: str, *, connections: int, duration_s: int, script_args: dict[str, str],
            cpu: int | None, timeout_s: int = 10) -> list[str]:
    """One thread: wrk is pinned to one core, where more threads would only take turns."""
    argv = [wrk_binary(), "-t1", f"-c{connections}", f"-d{duration_s}s", f"--timeout={timeout_s}s",
            "-s", str(SCRIPTS / f"{script}.lua"), url, "--", *(f"{k}={v}" for k, v in script_args.items())]
    return (["taskset", "-c", str(cpu)] if cpu is not None else []) + argv


def run(argv: list[str], raw_path: Path | None, *, tick: Callable[[float], None] | None = None,
        stop_when: Callable[[], bool] | None = None, limit_s: float) -> WrkResult:
    """Run wrk to its end (or SIGINT it once `stop_when()` is true; wrk then reports as usual).

    `tick(elapsed)` is called about five times a second; the whole run is bounded by `limit_s` + GRACE_S.
    """
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stopping = False
    rusage = None
    chunks: list[bytes] = []
    os.set_blocking(proc.stdout.fileno(), False)
    while True:
        _drain(proc, chunks)
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        elapsed = time.monotonic() - started
        if tick is not None:
            tick(elapsed)
        if not stopping and (elapsed > limit_s + GRACE_S or (stop_when is not None and stop_when())):
            stopping = True
            proc.send_signal(signal.SIGINT)
        elif stopping and elapsed > limit_s + 2 * GRACE_S:
            proc.kill()
        time.sleep(0.2)
    _drain(proc, chunks)
    proc.stdout.close()
    raw = b"".join(chunks).decode(errors="replace")
    result = WrkResult(argv, proc.returncode, raw, parse_summary(raw), time.monotonic() - started,
                       rusage.ru_utime + rusage.ru_stime if rusage else 0.0)
    result.problems = problems(result)
    if raw_path is not None:
        raw_path.parent.mkdir(parents=True, exist_ok=True)
        raw_path.write_text(f"$ {result.command}\n{raw}")
    return result


def _drain(proc: subprocess.Popen, chunks: list[bytes]) -> None:
    try:
        while True:
            data = proc.stdout.read(65536)
            if not data:
                return
            chunks.append(data)
    except BlockingIOError:
        return


def parse_summary(raw: str) -> dict[str, Any] | None:
    """The last JSON line that our scripts' done() printed, or None."""
    for line in reversed(raw.splitlines()):
        line = line.strip()
        if line.startswith("{") and SUMMARY_KEY in line:
            try:
                found = json.loads(line)
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None


def problems(result: WrkResult) -> list[str]:
    """Everything that makes a run invalid: a failed wrk, socket errors, any status other than 2xx."""
    found: list[str] = []
    if result.returncode != 0:
        found.append(f"wrk exited with {result.returncode}")
    summary = result.summary
    if summary is None:
        return found + ["no summary line from the script (see the raw output)"]
    if summary["requests"] <= 0:
        found.append("no request completed")
    errors = summary["errors"]
    sockets = {kind: errors[kind] for kind in ("connect", "read", "write", "timeout") if errors[kind]}
    if sockets:
        found.append("socket errors: " + ", ".join(f"{k} {v}" for k, v in sockets.items()))
    if errors["status"]:
        found.append(f"{errors['status']} responses with status >= 400 (wrk)")
    non2xx = summary.get("non2xx")
    if isinstance(non2xx, int) and non2xx:
        counted = sorted((summary.get("non2xx_by_status") or {}).items())
        by_status = ", ".join(f"{n} x {code}" for code, n in counted)
        found.append(f"{non2xx} non-2xx responses (counted by the script: {by_status})")
    return found
