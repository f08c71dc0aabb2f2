"""cachegate up / status / down on a test config: idempotent start, stop leaves no process behind."""
from __future__ import annotations

import json
import stat
import subprocess
import sys
import urllib.request

import pytest

from stack import launcher
from stack.admin_client import admin_call
from stack.net import port_open
from stack.process import pid_alive

pytestmark = pytest.mark.slow


def test_up_status_second_up_and_down(stack_config) -> None:
    config = stack_config
    lines: list[str] = []
    launcher.up(config, seed_users=20, say=lines.append)

    rows = {row.name: row for row in launcher.status(config)}
    assert [name for name, row in rows.items() if not row.up] == [], lines
    assert list(rows)[-1] == "supervisor" and rows["supervisor"].port is None
    running = {name: row.pid for name, row in rows.items()}
    for name, pid in running.items():
        assert pid_alive(pid), name
        assert name == "supervisor" or port_open("127.0.0.1", rows[name].port), name
    assert (config.stack.data_dir / "logs" / "redis.log").is_file()
    assert (config.stack.data_dir / "run" / "mariadb.pid").read_text().strip() == str(running["mariadb"])
    assert config.auth.private_key.is_file() and config.mariadb.password_file.is_file()
    for secret in (config.redis.password_file, config.proxy.admin_token_file,
                   launcher.redis_admin_password_file(config)):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert_demo_user_reads_itself_through_the_proxy(config)
    assert admin_call(config, "GET", "/-/admin/state")["cache_enabled"] is True  # with the token up made

    again: list[str] = []
    launcher.up(config, seed_users=20, say=again.append)
    assert {row.name: row.pid for row in launcher.status(config) if row.up} == running
    assert not any(" started " in line for line in again), again

    launcher.down(config, say=lambda line: None)
    for name, pid in running.items():
        assert not pid_alive(pid), name
        assert name == "supervisor" or not port_open("127.0.0.1", rows[name].port), name
    assert not any(row.up for row in launcher.status(config))
    assert list((config.stack.data_dir / "run").glob("*.pid")) == []


def test_cli_status_reports_down_and_exits_nonzero(stack_config) -> None:
    result = subprocess.run([sys.executable, "-m", "cachegate", "status", "--config", str(stack_config.path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["redis", "mariadb", *stack_config.services, "proxy", "supervisor"]
    assert all(line.rstrip().endswith("down") for line in result.stdout.splitlines())


def assert_demo_user_reads_itself_through_the_proxy(config) -> None:
    """What `up` prints as the thing to try: a seeded user's token, then GET /users/{id} through the proxy."""
    user = json.loads((config.stack.data_dir / "seed-users.json").read_text())["users"][0]
    base = f"http://127.0.0.1:{config.proxy.port}"
    body = json.dumps({"login": user["login"], "password": user["password"]}).encode()
    request = urllib.request.Request(f"{base}/auth/token", method="POST", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.load(response)["access_token"]
    request = urllib.request.Request(f"{base}/users/{user['id']}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert json.load(response)["id"] == user["id"]
