"""Process plumbing shared by the launcher: pid files, liveness, bounded waits and stopping by pid."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable


class StackError(RuntimeError):
    """A server of the local stack could not be started, reached or stopped."""


def pid_alive(pid: int | None) -> bool:
    """True while the process exists and is not a zombie (a zombie holds no port and does no work)."""
    if not pid or pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # The command name is in parentheses and may itself contain spaces or parentheses.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def pid_cmdline(pid: int) -> str:
    """The command line of a process ('' when it is gone), to tell a recycled pid from ours."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (a process we started in its own session, and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid_file(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed; never sleeps past the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def spawn(argv: list[str], log_path: Path, *, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a server as a plain process in its own session, so a Ctrl-C in our terminal does not reach it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=cwd, env=env, start_new_session=True)


def wait_gone(pid: int, timeout: float, popen: subprocess.Popen | None = None) -> bool:
    """Wait until `pid` has exited; reap it when it is our child so it does not linger as a zombie."""
    if popen is not None and popen.pid == pid:
        try:
            popen.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    return wait_until(lambda: not pid_alive(pid), timeout)


def send_signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def terminate(pid: int, *, timeout: float = 10.0, popen: subprocess.Popen | None = None) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL and wait again: the process is gone when this returns."""
    if not pid_alive(pid):
        wait_gone(pid, 0.1, popen)
        return
    # A SIGSTOPped process would keep SIGTERM pending forever: let it run so it can exit.
    send_signal(pid, signal.SIGCONT)
    send_signal(pid, signal.SIGTERM)
    if wait_gone(pid, timeout, popen):
        return
    send_signal(pid, signal.SIGKILL)
    if not wait_gone(pid, 5.0, popen):
        raise StackError(f"process {pid} did not exit after SIGKILL")
