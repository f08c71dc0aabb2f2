"""One of our own processes (a backend service or the proxy), tracked by a pid file, probed until ready."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Callable, Sequence

from stack.ports import taken
from stack.process import (StackError, group_members, log_tail, pid_alive, pid_cmdline, read_pid_file, spawn,
                           wait_until, write_pid_file)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ManagedProcess:
    """A command run in its own session; its pid file says whether it runs, its probe whether it is ready."""

    def __init__(self, name: str, argv: list[str], *, port: int, pid_path: Path, log_path: Path,
                 ready: Callable[[], bool], module: str, cwd: Path | None = None,
                 addresses: Sequence[tuple[str, int]] = ()) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.pid_path = pid_path
        self.log_path = log_path
        self.ready = ready
        self.cwd = cwd
        self.addresses = tuple(addresses) or (("127.0.0.1", port),)
        # `-m <module>` must be in the pid's command line, so a recycled pid is never mistaken for ours.
        self.marker = f" -m {module} "
        self._popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        if self._popen is not None and self._popen.poll() is None:
            return self._popen.pid
        pid = read_pid_file(self.pid_path)
        if pid_alive(pid) and self.marker in " " + pid_cmdline(pid):
            return pid
        return None

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = START_TIMEOUT) -> bool:
        """Start and wait until ready; False (and nothing done) when it already runs."""
        if self.is_running():
            return False
        for host, port in self.addresses:
            # Else another program's listener would pass the readiness probe while ours dies on its bind.
            why = taken(host, port)
            if why is not None:
                raise StackError(f"{self.name}: port {port} on {host} is {why}")
        self._popen = spawn(self.argv, self.log_path, cwd=self.cwd)
        write_pid_file(self.pid_path, self._popen.pid)
        wait_until(lambda: self._popen.poll() is not None or self.ready(), timeout, interval=0.05)
        if self._popen.poll() is not None:
            self.pid_path.unlink(missing_ok=True)
            raise StackError(f"{self.name} exited with code {self._popen.returncode}; "
                             f"last lines of {self.log_path}:\n{log_tail(self.log_path)}")
        if not self.ready():
            self.stop()
            raise StackError(f"{self.name} was not ready within {timeout:.0f}s; "
                             f"last lines of {self.log_path}:\n{log_tail(self.log_path)}")
        return True

    def stop(self) -> None:
        """SIGTERM the process group (the proxy's workers too), SIGKILL what is left; all gone on return."""
        pid = self.pid
        if pid is not None:
            # start_new_session made the process a group leader: its group is exactly what we started.
            _signal_group(pid, signal.SIGTERM)
            if not self._wait_gone(pid, STOP_TIMEOUT):
                _signal_group(pid, signal.SIGKILL)
                if not self._wait_gone(pid, 5.0):
                    raise StackError(f"{self.name} (pid {pid}) did not exit after SIGKILL")
        self.pid_path.unlink(missing_ok=True)
        self._popen = None

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        def gone() -> bool:
            if self._popen is not None and self._popen.pid == pid:
                self._popen.poll()  # reap our child, or it lingers as a zombie
            return not pid_alive(pid) and not group_members(pid)  # a worker may outlive its parent a moment
        return wait_until(gone, timeout)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
