"""`cachegate up` with ports taken by other programs: one line per port with its owner, nothing started."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stack import launcher
from stack.net import free_port, port_open
from stack.ports import owners, taken
from stack.process import StackError, terminate, wait_until

REPO = Path(__file__).resolve().parents[2]


def test_a_listener_of_ours_is_named_with_its_pid_and_command() -> None:
    port = free_port()
    assert taken("127.0.0.1", port) is None
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        (owner,) = owners(port)
        assert owner.pid == os.getpid() and "pytest" in owner.command
        assert taken("127.0.0.1", port) == f"taken by pid {os.getpid()} ({owner.command[:80]}" + \
            ("...)" if len(owner.command) > 80 else ")")
        assert taken("0.0.0.0", port) is not None   # every interface includes the one that is taken
    assert taken("127.0.0.1", port) is None


def squat(port: int) -> subprocess.Popen:
    """Another program listening on `port` (its own process, with a command line to recognise)."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.listener", str(port)], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: proc.poll() is not None or port_open("127.0.0.1", port, 0.2), 20)
    assert proc.poll() is None
    return proc


@pytest.mark.slow
def test_up_with_a_service_port_and_the_proxy_port_taken_starts_nothing_and_names_each_owner(
        stack_config) -> None:
    config = stack_config
    taken_ports = {"users": config.services["users"].port, "proxy": config.proxy.port}
    squatters = {name: squat(port) for name, port in taken_ports.items()}
    try:
        printed: list[str] = []
        with pytest.raises(StackError) as caught:
            launcher.up(config, seed_users=0, say=printed.append)
        lines = str(caught.value).splitlines()
        assert "nothing was started" in lines[0]
        for name, port in taken_ports.items():
            (line,) = [line for line in lines if f"port {port} ({name})" in line]
            assert f"taken by pid {squatters[name].pid} (" in line and "tests.support.listener" in line, line
        assert len(lines) == 1 + len(taken_ports), lines
        assert printed == []
        assert not any(row.up for row in launcher.status(config))
        assert not any(port_open("127.0.0.1", port) for port in (config.redis.port, config.mariadb.port))
        assert list((config.stack.data_dir / "run").glob("*.pid")) == []

        # The command says the same, one line per port, and exits 1 without a traceback.
        done = subprocess.run([sys.executable, "-m", "cachegate", "up", "--seed-users", "0", "--config",
                               str(config.path)], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
        for name, port in taken_ports.items():
            assert sum(f"port {port} ({name})" in line for line in done.stderr.splitlines()) == 1, done.stderr
        assert not any(row.up for row in launcher.status(config))
    finally:
        for proc in squatters.values():
            terminate(proc.pid, timeout=5, popen=proc)
