"""What the supervisor records of each process (restarts, last exit, next try) and the file `status` reads."""
from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

RUNNING, WAITING, STARTING = "running", "waiting", "starting"


@dataclass
class Record:
    """One process as its supervisor sees it; times are wall-clock seconds (for people), None until known."""

    name: str
    state: str = STARTING
    pid: int | None = None
    since: float | None = None            # when the current process started (or was adopted)
    restarts: int = 0                     # processes the supervisor started after the first
    last_exit: str | None = None          # how the last process ended: "killed by SIGKILL", "exit code 1"
    last_exit_at: float | None = None
    last_restart_at: float | None = None
    last_error: str | None = None         # why the last restart failed (cleared by one that works)
    retry_at: float | None = None         # while waiting: when the next start is due
    delay_s: float | None = None          # while waiting: the backoff chosen

    def describe(self) -> str:
        """What `cachegate status` adds after up/down: restarts, the last exit, the next try."""
        parts = []
        if self.state == WAITING and self.retry_at is not None:
            parts.append(f"restart in {max(0.0, self.retry_at - time.time()):.1f} s")
        elif self.state == STARTING:
            parts.append("starting")
        if self.restarts:
            parts.append(f"restarts {self.restarts}")
        if self.last_exit is not None:
            parts.append(f"last exit: {self.last_exit} at {_clock(self.last_exit_at)}")
        if self.last_restart_at is not None:
            parts.append(f"restarted at {_clock(self.last_restart_at)}")
        if self.last_error is not None:
            parts.append(f"last try failed: {self.last_error}")
        return ", ".join(parts)


def describe_exit(status: int | None) -> str:
    """A wait status in words; None: the process was not our child, so its status is not ours to read."""
    if status is None:
        return "ended, status unknown (not its child)"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit code {os.WEXITSTATUS(status)}"


def write_records(path: Path, supervisor_pid: int, records: list[Record]) -> None:
    """Replace the file in one rename, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"supervisor": supervisor_pid, "written_at": time.time(),
                               "units": [asdict(r) for r in records]}, indent=1))
    tmp.replace(path)


def read_records(path: Path) -> dict[str, Record]:
    """The records by name; {} when there is no file (no supervisor yet) or it cannot be read."""
    try:
        data = json.loads(path.read_text())
        known = {f.name for f in fields(Record)}
        return {u["name"]: Record(**{k: v for k, v in u.items() if k in known}) for u in data["units"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _clock(at: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) if at is not None else "?"
