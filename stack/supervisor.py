"""The supervision loop: start units in order, restart one that died with a bounded backoff, record it all.

It knows units only by the launcher's `Unit` protocol (a pid, a port, start/stop/is_running), so a plain
server, one of our processes or a cluster is supervised alike. A unit it started is its child: its death
wakes the loop (SIGCHLD, through the wake-up socket) and its wait status says how it ended. A unit it
adopted (already running when it started) is polled by pid every POLL_S.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from stack.process import StackError, group_members, pid_alive, wait_until
from stack.restarts import RUNNING, STARTING, WAITING, Record, describe_exit, read_records, write_records

Say = Callable[[str], None]
POLL_S = 0.5               # how often a unit that is not our child is checked by pid
FIRST_DELAY_S = 0.5        # the first restart of a crashed unit waits this long ...
MAX_DELAY_S = 10.0         # ... doubling with each crash in a row, up to this ...
HEALTHY_S = 60.0           # ... and back to the first delay once the unit has run this long
LEFTOVERS_TIMEOUT_S = 5.0
# What a failed start may raise: the launcher turns its own failures (a database hook) into StackError.
START_ERRORS = (StackError, OSError, subprocess.SubprocessError)


class Unit(Protocol):
    """What the launcher starts and the supervisor watches: one server, one of our processes, a cluster."""

    pid: int | None
    port: int

    def start(self) -> bool: ...
    def stop(self) -> None: ...
    def is_running(self) -> bool: ...


@dataclass(frozen=True)
class Slot:
    """A unit under its name; `after_start` runs after each start (a database's schema, a login check)."""

    name: str
    host: str
    unit: Unit
    after_start: Callable[[Say], None] | None = None


class Backoff:
    """FIRST_DELAY_S doubling to MAX_DELAY_S for crashes in a row; a run of HEALTHY_S starts it over."""

    def __init__(self, first: float = FIRST_DELAY_S, cap: float = MAX_DELAY_S,
                 healthy: float = HEALTHY_S) -> None:
        self.first, self.cap, self.healthy = first, cap, healthy
        self.in_a_row = 0

    def after(self, ran_for: float) -> float:
        """The wait before the next start of a unit that ran `ran_for` seconds (0: its start failed)."""
        if ran_for >= self.healthy:
            self.in_a_row = 0
        delay = min(self.cap, self.first * 2 ** self.in_a_row)
        self.in_a_row += 1
        return delay


class Supervisor:
    """Owns the units of one stack while it runs; `run()` returns after `request_stop()` (SIGTERM)."""

    def __init__(self, slots: list[Slot], *, state_path: Path, say: Say,
                 backoff: Callable[[], Backoff] = Backoff,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = slots
        self.state_path = state_path
        self._say = say
        self._clock = clock
        # A supervisor that follows one that died keeps its count (`cachegate down` drops the file).
        before = read_records(state_path)
        self.records = {s.name: Record(s.name) for s in slots}
        for name, record in self.records.items():
            if name in before:
                old = before[name]
                record.restarts, record.last_exit = old.restarts, old.last_exit
                record.last_exit_at, record.last_restart_at = old.last_exit_at, old.last_restart_at
        self._backoff = {s.name: backoff() for s in slots}
        self._since: dict[str, float] = {}        # monotonic start of each running unit
        self._due: dict[str, float] = {}          # monotonic time of each waiting unit's next start
        self._children: set[int] = set()          # pids we started: their wait status is ours to read
        self._dead: dict[str, int] = {}           # the pid of each waiting unit's last process
        self._stopping = False
        self._retry_now = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # --- control, from signal handlers or another thread ------------------------------------------------
    @property
    def wake_fd(self) -> int:
        """Give it to signal.set_wakeup_fd: any signal (SIGCHLD above all) ends the loop's wait at once."""
        return self._wake_w.fileno()

    def request_stop(self) -> None:
        self._stopping = True
        self.wake()

    def request_retry(self) -> None:
        """Start what is waiting now, without waiting out its backoff (`cachegate up` asks for it)."""
        self._retry_now = True
        self.wake()

    def wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass   # a full socket wakes the loop just as well

    # --- the first start ---------------------------------------------------------------------------------
    def start_all(self, say: Say) -> None:
        """Start (or adopt) every unit in order; on a failure stop again what this call started, and raise."""
        started: list[Slot] = []
        for slot in self.slots:
            try:
                fresh = slot.unit.start()
                if fresh:
                    started.append(slot)
                    self._child(slot)
                state = "started" if fresh else "already running"
                say(f"{slot.name:<8} {state:<15} pid {slot.unit.pid}  {slot.host}:{slot.unit.port}")
                if slot.after_start is not None:
                    slot.after_start(say)
            except START_ERRORS as exc:
                self._roll_back(started, say)
                raise StackError(str(exc)) from None
            except BaseException:
                self._roll_back(started, say)   # a bug, or Ctrl-C: still leave nothing half-started
                raise
            self._running(slot)
        self._save()

    def _roll_back(self, started: list[Slot], say: Say) -> None:
        for slot in reversed(started):
            pid = slot.unit.pid
            try:
                slot.unit.stop()
                say(f"{slot.name:<8} stopped again (pid {pid}): the stack did not come up")
            except START_ERRORS as exc:
                say(f"{slot.name:<8} could not be stopped again (pid {pid}): {exc}")

    # --- the loop ------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Watch and restart until asked to stop; what runs keeps running (`cachegate down` stops it)."""
        while not self._stopping:
            now = self._clock()
            changed = False
            for slot in self.slots:
                changed |= self._check(slot, now)
            if self._retry_now:
                self._retry_now = False
                self._due = {name: now for name in self._due}
            for slot in self.slots:
                if self._stopping:
                    break
                if slot.name in self._due and self._due[slot.name] <= self._clock():
                    self._restart(slot)
                    changed = True
            if changed:
                self._save()
            self._wait(self._next_wake())
        self._say("supervisor: stopping on request; the processes keep running until `cachegate down`")

    def _check(self, slot: Slot, now: float) -> bool:
        """Notice a unit that died; True when its record changed."""
        record = self.records[slot.name]
        if record.state != RUNNING:
            return False
        status, gone = self._wait_status(record.pid)
        if not gone and slot.unit.is_running():
            return False
        ran_for = now - self._since.get(slot.name, now)
        delay = self._backoff[slot.name].after(ran_for)
        if record.pid is not None:
            self._dead[slot.name] = record.pid
        record.state, record.pid = WAITING, None
        record.last_exit, record.last_exit_at = describe_exit(status), time.time()
        record.delay_s, record.retry_at = delay, time.time() + delay
        self._due[slot.name] = now + delay
        self._say(f"supervisor: {slot.name} is down ({record.last_exit} after {ran_for:.1f} s); "
                  f"restart in {delay:.1f} s")
        return True

    def _wait_status(self, pid: int | None) -> tuple[int | None, bool]:
        """(wait status, gone) of a pid we started; (None, False) for one we adopted (polled instead)."""
        if pid is None or pid not in self._children:
            return None, False
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            self._children.discard(pid)   # reaped elsewhere (the unit's own Popen): its status is lost
            return None, True
        if done == 0:
            return None, False
        self._children.discard(pid)
        return status, True

    def _restart(self, slot: Slot) -> None:
        record = self.records[slot.name]
        record.state = STARTING
        del self._due[slot.name]
        self._save()
        self._clear_leftovers(slot)
        fresh = False
        try:
            if slot.unit.start():
                fresh = True
                self._child(slot)
                record.restarts += 1
                record.last_restart_at = time.time()
            if slot.after_start is not None:
                slot.after_start(self._say)
        except START_ERRORS as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            delay = self._backoff[slot.name].after(0.0)
            record.state, record.last_error = WAITING, reason
            record.delay_s, record.retry_at = delay, time.time() + delay
            self._due[slot.name] = self._clock() + delay
            self._say(f"supervisor: {slot.name} did not start; next try in {delay:.1f} s: {exc}")
            return
        self._running(slot)
        self._say(f"supervisor: {slot.name} {'restarted' if fresh else 'runs again'} (pid {slot.unit.pid}, "
                  f"restart {record.restarts})")

    def _child(self, slot: Slot) -> None:
        """A unit just started by us: its pid is our child, whose wait status we may read."""
        if slot.unit.pid is not None:
            self._children.add(slot.unit.pid)

    def _running(self, slot: Slot) -> None:
        record = self.records[slot.name]
        record.state, record.pid, record.since = RUNNING, slot.unit.pid, time.time()
        record.retry_at = record.delay_s = record.last_error = None
        self._since[slot.name] = self._clock()

    def _clear_leftovers(self, slot: Slot) -> None:
        """Kill what is left of the dead unit's process group (the proxy's workers would keep its port)."""
        pid = self._dead.pop(slot.name, None)
        if pid is None or pid_alive(pid) or not group_members(pid):
            return
        self._say(f"supervisor: {slot.name}: killing what is left of process group {pid}: "
                  f"{group_members(pid)}")
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not group_members(pid), LEFTOVERS_TIMEOUT_S)

    def _next_wake(self) -> float:
        """Seconds until the next due start, or until the next poll of an adopted unit."""
        now = self._clock()
        soonest = min(self._due.values(), default=now + POLL_S)
        return max(0.0, min(soonest - now, POLL_S))

    def _wait(self, timeout: float) -> None:
        if self._stopping or self._retry_now:
            return
        ready, _, _ = select.select([self._wake_r], [], [], timeout)
        if ready:
            try:
                while self._wake_r.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass

    def _save(self) -> None:
        write_records(self.state_path, os.getpid(), list(self.records.values()))
