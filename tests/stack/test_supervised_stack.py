"""`cachegate up` supervises what it starts: each kind of process SIGKILLed under traffic comes back.

The bound this test holds the supervisor to: a process it started is back (a new pid, running, recorded)
within BACK_S of the kill (it notices at once, waits FIRST_DELAY_S, then the unit's own start, which its
readiness probe bounds), and the traffic succeeds again within RECOVER_S of that, with nobody's help.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest

from stack import launcher
from stack.net import port_open
from stack.process import pid_alive, wait_until
from stack.restarts import RUNNING

pytestmark = [pytest.mark.slow, pytest.mark.fault, pytest.mark.timeout(600)]
BACK_S = 30.0
RECOVER_S = 30.0
PACE_S = 0.02   # between two operations of the traffic: it keeps the machine usable, it synchronises nothing


@dataclass
class Op:
    kind: str
    started: float
    status: int
    cache: str


@dataclass
class Traffic:
    """One client in a thread: PATCH its own user, read it back (/users/me) and another user, again."""

    base: str
    token: str
    user_id: int
    other_id: int
    ops: list[Op] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            self.call("write", "PATCH", f"/users/{self.user_id}", {"title": f"t{n}"})
            self.call("me", "GET", "/users/me")
            self.call("other", "GET", f"/users/{self.other_id}")
            self.stop.wait(PACE_S)

    def call(self, kind: str, method: str, path: str, body: dict | None = None) -> None:
        started = time.monotonic()
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, method=method, data=data, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                status, cache = resp.status, resp.headers.get("Cache-Status", "")
        except urllib.error.HTTPError as exc:
            status, cache = exc.code, exc.headers.get("Cache-Status", "")
        except OSError:
            status, cache = 0, ""
        self.ops.append(Op(kind, started, status, cache))

    def succeeded_since(self, since: float, kind: str, *, hit: bool = False) -> bool:
        return any(op.started >= since and op.kind == kind and op.status == 200
                   and (not hit or "; hit" in op.cache) for op in list(self.ops))


def token_of(base: str, config) -> tuple[str, int, int]:
    users = json.loads((config.stack.data_dir / "seed-users.json").read_text())["users"]
    body = json.dumps({"login": users[0]["login"], "password": users[0]["password"]}).encode()
    request = urllib.request.Request(base + "/auth/token", method="POST", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)["access_token"], int(users[0]["id"]), int(users[1]["id"])


def unit_pid(config, name: str) -> int | None:
    return next(unit.pid for n, _, unit in launcher.units(config) if n == name)


def row(config, name: str):
    return next(r for r in launcher.status(config) if r.name == name)


def back(config, name: str, dead: int) -> bool:
    """A new process of that name runs, and the supervisor has it on record as running."""
    pid = unit_pid(config, name)
    if pid is None or pid == dead:
        return False
    record = launcher.supervisor(config).records().get(name)
    return record is not None and record.state == RUNNING


def test_every_kind_of_process_killed_under_traffic_comes_back_and_the_traffic_recovers(stack_config) -> None:
    config = stack_config
    launcher.up(config, seed_users=3, say=lambda line: None)
    base = f"http://127.0.0.1:{config.proxy.port}"
    token, user_id, other_id = token_of(base, config)
    traffic = Traffic(base, token, user_id, other_id)
    thread = threading.Thread(target=traffic.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: traffic.succeeded_since(0, "other", hit=True), RECOVER_S)
        # What each kill must bring back: Redis -> reads are cache hits again; the others -> writes succeed
        # (a write needs the proxy, the users service and MariaDB).
        for name, recovered in (("redis", ("other", True)), ("mariadb", ("write", False)),
                                ("users", ("write", False)), ("proxy", ("write", False))):
            dead = unit_pid(config, name)
            assert dead is not None, name
            os.kill(dead, signal.SIGKILL)
            assert wait_until(lambda: back(config, name, dead), BACK_S, interval=0.05), \
                f"{name} was not back within {BACK_S:.0f} s: {row(config, name)}"
            came_back = time.monotonic()
            kind, hit = recovered
            assert wait_until(lambda: traffic.succeeded_since(came_back, kind, hit=hit), RECOVER_S), \
                f"after {name} came back, no {kind} request succeeded within {RECOVER_S:.0f} s"
            record = launcher.supervisor(config).records()[name]
            assert record.restarts == 1 and record.last_exit == "killed by SIGKILL", record
            assert "restarts 1, last exit: killed by SIGKILL" in str(row(config, name))

        # The supervisor itself killed: nothing restarts it, and nothing needs to: the processes run on.
        pids = {name: unit_pid(config, name) for name, _, _ in launcher.units(config)}
        keeper = launcher.supervisor(config)
        supervisor_pid = keeper.pid
        os.kill(supervisor_pid, signal.SIGKILL)
        assert wait_until(lambda: keeper.pid is None, 10)
        since = time.monotonic()
        assert wait_until(lambda: traffic.succeeded_since(since, "write"), RECOVER_S)
        assert not row(config, "supervisor").up
        assert {name: unit_pid(config, name) for name in pids} == pids
        # A second `up` starts a new supervisor, which adopts what runs and starts nothing else ...
        lines: list[str] = []
        launcher.up(config, seed_users=0, say=lines.append)
        assert keeper.pid not in (None, supervisor_pid)
        assert {name: unit_pid(config, name) for name in pids} == pids
        assert not any(" started " in line for line in lines if not line.startswith("supervisor")), lines
        # ... and restarts one of them that dies (not its child: the status is unknown), counting on.
        dead = pids["users"]
        os.kill(dead, signal.SIGKILL)
        assert wait_until(lambda: back(config, "users", dead), BACK_S, interval=0.05)
        record = keeper.records()["users"]
        assert record.restarts == 2 and record.last_exit == "ended, status unknown (not its child)", record

        # `up` right after a kill does not wait out the backoff or start a second copy: the supervisor does.
        dead = unit_pid(config, "paths")
        os.kill(dead, signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(dead), 10)   # SIGKILL takes effect a moment after kill()
        lines = []
        launcher.up(config, seed_users=0, say=lines.append)
        assert unit_pid(config, "paths") not in (None, dead)
        assert any(line.startswith("paths") and "restarted" in line for line in lines), lines
        assert keeper.records()["paths"].restarts == 1
    finally:
        traffic.stop.set()
        thread.join(30)

    # `down` stops the supervisor first: none of what it then stops is seen dying, nor started again.
    running = {name: unit_pid(config, name) for name, _, _ in launcher.units(config)}
    last = keeper.pid
    launcher.down(config, say=lambda line: None)
    assert not pid_alive(last)
    for name, pid in running.items():
        assert pid is not None and not pid_alive(pid), name
    assert not any(r.up for r in launcher.status(config))
    assert not any(port_open("127.0.0.1", port) for port in
                   (config.proxy.port, config.redis.port, config.mariadb.port, config.services["users"].port))
    text = keeper.files.log_path.read_text()
    assert text.count(" is down (") == 6, text   # the six kills above, nothing that `down` stopped
    assert not keeper.files.state_path.exists()
