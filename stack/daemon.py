"""`python -m stack.daemon CONFIG [--report-fd N]`: the supervisor process that `cachegate up` leaves running.

It holds run/supervisor.lock while it lives (a second one for the same stack refuses to start), writes
run/supervisor.pid, logs to logs/supervisor.log and records every process in run/supervisor.json. It starts
the stack (reporting each line to the `cachegate up` that started it), then restarts what dies. SIGTERM
(`cachegate down`) ends it and leaves the processes to `down`, which stops them by pid; SIGUSR1 (`cachegate
up`) starts at once what waits for a restart.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import time
from typing import IO, Any

from cachegate.config import load_config
from cachegate.errors import ConfigError
from stack.launcher import slots, supervisor
from stack.process import StackError, read_pid_file, write_pid_file
from stack.supervisor import Supervisor


class Report:
    """JSON lines to the `cachegate up` that started us, on the pipe it passed; closed once all runs."""

    def __init__(self, fd: int | None) -> None:
        self._out: IO[bytes] | None = os.fdopen(fd, "wb", buffering=0) if fd is not None else None

    def send(self, **message: Any) -> None:
        if self._out is None:
            return
        try:
            self._out.write(json.dumps(message).encode() + b"\n")
        except OSError:
            self._out = None   # `up` is gone (Ctrl-C): the stack goes on without its audience

    def close(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except OSError:
                pass
            self._out = None


def log(line: str) -> None:
    """One line of the supervisor's log (its stderr is the log file)."""
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.daemon", description=__doc__)
    parser.add_argument("config")
    parser.add_argument("--report-fd", type=int, default=None)
    args = parser.parse_args(argv)
    report = Report(args.report_fd)
    try:
        config = load_config(args.config)
        keeper = supervisor(config)
        files = keeper.files
        files.run_dir.mkdir(parents=True, exist_ok=True)
        lock = open(files.lock_path, "a+b")   # held (open and locked) until this process ends
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        report.send(error=f"a supervisor of this stack runs already (pid {read_pid_file(files.pid_path)})")
        return 1
    except (ConfigError, StackError, OSError) as exc:
        report.send(error=f"the supervisor cannot start: {exc}")
        return 1
    write_pid_file(files.pid_path, os.getpid())
    sup = Supervisor(slots(config), state_path=files.state_path, say=log)
    _handle_signals(sup)
    log(f"supervisor: pid {os.getpid()}, config {args.config}")

    def say(line: str) -> None:
        log(line)
        report.send(say=line)

    try:
        sup.start_all(say)
    except StackError as exc:
        log(f"supervisor: the stack did not come up: {exc}")
        report.send(error=str(exc))
        _remove_pid_file(files.pid_path)
        return 1
    report.send(ready=os.getpid())
    report.close()
    try:
        sup.run()
    finally:
        _remove_pid_file(files.pid_path)
        lock.close()
    return 0


def _handle_signals(sup: Supervisor) -> None:
    signal.set_wakeup_fd(sup.wake_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, lambda *_: sup.request_stop())
    signal.signal(signal.SIGINT, lambda *_: sup.request_stop())
    signal.signal(signal.SIGUSR1, lambda *_: sup.request_retry())
    signal.signal(signal.SIGCHLD, lambda *_: None)   # a child died: the wake-up fd ends the loop's wait
    # No terminal to hang up: a stray HUP must not end us. A handler, not SIG_IGN, which the processes we
    # start would inherit (the proxy reloads on SIGHUP).
    signal.signal(signal.SIGHUP, lambda *_: None)


def _remove_pid_file(path: Any) -> None:
    if read_pid_file(path) == os.getpid():
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
