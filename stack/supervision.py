"""The supervisor seen from `cachegate up/down/status`: its files, its start (relaying its report), signals.

`start` runs `python -m stack.daemon CONFIG --report-fd N` in a session of its own, its output to its log,
and reads what it reports on the pipe until it closes it: a line per process started, then "ready" or the
error. The command's own stdout is never handed to the daemon, so whoever reads `cachegate up` through a
pipe sees it end as soon as the stack is up.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from stack.process import StackError, log_tail, pid_alive, pid_cmdline, read_pid_file, send_signal, terminate
from stack.restarts import Record, read_records

SUPERVISOR_MODULE = "stack.daemon"
REPORT_TIMEOUT_S = 600.0   # the first start of everything, a new MariaDB's install-db included
STOP_TIMEOUT_S = 90.0      # it ends the start it is in (MariaDB may take 60 s) before it exits
Say = Callable[[str], None]


@dataclass(frozen=True)
class SupervisorFiles:
    """Where one stack's supervisor keeps its pid, lock, records and log."""

    run_dir: Path
    log_path: Path

    @property
    def pid_path(self) -> Path:
        return self.run_dir / "supervisor.pid"

    @property
    def lock_path(self) -> Path:
        return self.run_dir / "supervisor.lock"

    @property
    def state_path(self) -> Path:
        return self.run_dir / "supervisor.json"


class SupervisorProcess:
    """The daemon of one stack, found by its pid file (and `-m stack.daemon` in that pid's command line)."""

    def __init__(self, files: SupervisorFiles, config_file: Path | None, cwd: Path | None = None) -> None:
        self.files = files
        self.config_file = config_file
        self.cwd = cwd
        self.marker = f" -m {SUPERVISOR_MODULE} "

    @property
    def pid(self) -> int | None:
        pid = read_pid_file(self.files.pid_path)
        if pid_alive(pid) and self.marker in " " + pid_cmdline(pid):
            return pid
        return None

    def records(self) -> dict[str, Record]:
        """What it last wrote of each process (also after it died: the last it knew)."""
        return read_records(self.files.state_path)

    def start(self, say: Say, timeout: float = REPORT_TIMEOUT_S) -> int:
        """Start the daemon, relay its report, return its pid once everything runs; else StackError."""
        if self.config_file is None:
            raise StackError("the launcher needs a config loaded from a file (its processes read it again)")
        self.files.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.files.run_dir.mkdir(parents=True, exist_ok=True)
        read_end, write_end = os.pipe()
        # -P: not the working directory first on sys.path; a data_dir named stack/ there would hide ours.
        argv = [sys.executable, "-P", "-m", SUPERVISOR_MODULE, str(self.config_file),
                "--report-fd", str(write_end)]
        try:
            with open(self.files.log_path, "ab") as log:
                popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.cwd,
                                         start_new_session=True, pass_fds=(write_end,))
        finally:
            os.close(write_end)   # ours; the daemon's copy is the one that says when it is done
        ready, error = None, None
        try:
            for message in _messages(read_end, timeout):
                if "say" in message:
                    say(str(message["say"]))
                elif "error" in message:
                    error = str(message["error"])
                elif "ready" in message:
                    ready = int(message["ready"])
        finally:
            os.close(read_end)
        if error is not None:
            _reap(popen)
            raise StackError(error)
        if ready is None:
            code = _reap(popen)
            raise StackError(f"the supervisor ended (exit {code}) before the stack was up; last lines of "
                             f"{self.files.log_path}:\n{log_tail(self.files.log_path)}")
        return ready

    def retry(self) -> None:
        """Ask it to start now what waits for a restart (SIGUSR1)."""
        pid = self.pid
        if pid is not None:
            send_signal(pid, signal.SIGUSR1)

    def stop(self) -> int | None:
        """SIGTERM and wait until it is gone (it finishes a start in progress first); its pid, or None."""
        pid = self.pid
        if pid is not None:
            terminate(pid, timeout=STOP_TIMEOUT_S)
        self.files.pid_path.unlink(missing_ok=True)
        return pid

    def forget(self) -> None:
        """Drop its records: a stack started again counts its restarts from zero."""
        self.files.state_path.unlink(missing_ok=True)


def _messages(fd: int, timeout: float) -> Iterator[dict[str, Any]]:
    """The daemon's JSON lines until it closes the pipe; StackError when it is silent past `timeout`."""
    deadline = time.monotonic() + timeout
    buffer = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise StackError(f"the supervisor had not started the stack after {timeout:.0f} s (see its log)")
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if buffer.strip():
        yield json.loads(buffer)


def _reap(popen: subprocess.Popen) -> int | None:
    """The daemon ends right after it reports a failure: collect its exit status (no zombie)."""
    try:
        return popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return None
