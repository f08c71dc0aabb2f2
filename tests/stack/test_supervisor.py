"""The supervision loop over real processes: a unit that keeps crashing is restarted with bounded backoff."""
from __future__ import annotations

import os
import re
import socket
import sys
import threading

import pytest

from stack.managed import ManagedProcess
from stack.net import free_port, port_open
from stack.process import pid_alive, wait_until
from stack.restarts import RUNNING, WAITING, describe_exit, read_records
from stack.supervisor import FIRST_DELAY_S, HEALTHY_S, MAX_DELAY_S, Backoff, Slot, Supervisor

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_backoff_doubles_from_half_a_second_to_ten_and_starts_over_after_a_healthy_minute() -> None:
    backoff = Backoff()
    crashes = [backoff.after(ran_for=1.0) for _ in range(7)]
    assert crashes == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert (FIRST_DELAY_S, MAX_DELAY_S, HEALTHY_S) == (0.5, 10.0, 60.0)
    assert backoff.after(ran_for=0.0) == 10.0          # a start that failed counts as a crash in a row
    assert backoff.after(ran_for=60.0) == 0.5          # it ran a healthy minute: from the start again
    assert backoff.after(ran_for=59.0) == 1.0


def test_wait_statuses_in_words() -> None:
    assert describe_exit(9) == "killed by SIGKILL"     # os.WIFSIGNALED: the low bits are the signal
    assert describe_exit(3 << 8) == "exit code 3"
    assert describe_exit(None) == "ended, status unknown (not its child)"


def crashing_unit(tmp_path, port: int, *, exit_after: float) -> ManagedProcess:
    """A real process that listens on `port` and exits with code 3 after `exit_after` seconds."""
    argv = [sys.executable, "-m", "tests.support.listener", str(port), "--exit-after", str(exit_after),
            "--code", "3"]
    return ManagedProcess("crashy", argv, port=port, pid_path=tmp_path / "crashy.pid",
                          log_path=tmp_path / "crashy.log", cwd=REPO_ROOT, module="tests.support.listener",
                          ready=lambda: port_open("127.0.0.1", port, timeout=0.2))


@pytest.mark.slow
def test_a_unit_that_keeps_crashing_is_restarted_with_growing_delays_and_its_exits_recorded(tmp_path) -> None:
    port = free_port()
    unit = crashing_unit(tmp_path, port, exit_after=0.3)
    state = tmp_path / "supervisor.json"
    log: list[str] = []
    # The delays of the real supervisor scaled down (0.5 -> 0.1, 10 -> 0.4): the same doubling and cap.
    sup = Supervisor([Slot("crashy", "127.0.0.1", unit)], state_path=state, say=log.append,
                     backoff=lambda: Backoff(first=0.1, cap=0.4))
    sup.start_all(log.append)
    first = unit.pid
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    pids = {first}

    def seen(n: int) -> bool:
        record = read_records(state).get("crashy")
        if record is not None and record.pid:
            pids.add(record.pid)
        return record is not None and record.restarts >= n

    try:
        assert wait_until(lambda: seen(4), 30, interval=0.02), log
        record = read_records(state)["crashy"]
        assert record.last_exit == "exit code 3", record   # its own wait status: it is the supervisor's child
        assert len(pids) >= 4 and not pid_alive(first)
        # Every decision is in its log: each crash found, and the wait it chose.
        delays = [float(d) for d in re.findall(r"crashy is down \(exit code 3 after [0-9.]+ s\); restart in "
                                                r"([0-9.]+) s", "\n".join(log))]
        assert delays[:4] == [0.1, 0.2, 0.4, 0.4], (delays, log)
        # Its port taken by someone else: the restart fails, is recorded, and is tried again later.
        assert wait_until(lambda: read_records(state)["crashy"].state == WAITING, 10, interval=0.02)
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen(1)

            def refused() -> bool:
                found = read_records(state)["crashy"]
                return found.last_error is not None and f"taken by pid {os.getpid()}" in found.last_error

            assert wait_until(refused, 10, interval=0.02), log
        assert wait_until(lambda: read_records(state)["crashy"].last_error is None, 10, interval=0.02), log
    finally:
        sup.request_stop()
        thread.join(10)
        unit.stop()
    assert not thread.is_alive()
    assert read_records(state)["crashy"].state in (RUNNING, WAITING)
