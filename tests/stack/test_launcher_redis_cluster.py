"""`cachegate up` with redis.cluster: a Redis Cluster of 3 masters and 3 replicas created, supervised,
shown by `status` node by node, used by the gateway, and stopped by pid by `down`."""
from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest

from stack import launcher
from stack.net import free_port, port_open
from stack.process import pid_alive, wait_until
from tests.stack.test_launcher import assert_demo_user_reads_itself_through_the_proxy
from tests.support.configs import cluster_node_ports

pytestmark = [pytest.mark.slow, pytest.mark.fault, pytest.mark.timeout(600)]
BACK_S = 30.0


@pytest.fixture
def cluster_config(make_config):
    data_dir = make_config.tmp_path / "own-stack"
    nodes = [f"127.0.0.1:{port}" for port in cluster_node_ports(6)]
    config = make_config.file({
        "redis": {"cluster": {"nodes": nodes, "replicas": 1},
                  "password_file": str(data_dir / "secrets" / "redis-password")},
        "proxy": {"admin": {"token_file": str(data_dir / "secrets" / "admin-token")}},
        "mariadb": {"port": free_port()},
    })
    yield config
    launcher.down(config, say=lambda line: None)


def redis_rows(config):
    return [row for row in launcher.status(config) if row.name.startswith("redis")]


def entry_keys_by_node(config) -> dict[int, int]:
    """How many cache entries each node holds (asked as the admin, node by node)."""
    unit = launcher.redis_server(config)
    found = {}
    for node in unit.cluster.nodes:
        admin = node.admin(timeout=2.0)
        try:
            found[node.port] = len(admin.keys(f"{config.cache.prefix}:e:*"))
        finally:
            admin.close()
    return found


def read_twice(config) -> list[str]:
    user = json.loads((config.stack.data_dir / "seed-users.json").read_text())["users"]
    base = f"http://127.0.0.1:{config.proxy.port}"
    body = json.dumps({"login": user[0]["login"], "password": user[0]["password"]}).encode()
    request = urllib.request.Request(f"{base}/auth/token", method="POST", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.load(response)["access_token"]
    statuses = []
    for u in user:
        for _ in range(2):
            request = urllib.request.Request(f"{base}/users/{u['id']}",
                                             headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                statuses.append(response.headers["Cache-Status"])
    return statuses


def test_up_creates_and_supervises_the_cluster_status_shows_its_nodes_and_down_stops_them(cluster_config):
    config = cluster_config
    lines: list[str] = []
    launcher.up(config, seed_users=12, say=lines.append)
    rows = redis_rows(config)
    assert len(rows) == 7 and all(row.up for row in rows), [str(r) for r in rows]
    assert rows[0].name == "redis" and "3 masters, 3 replicas: ok" in rows[0].state
    assert sum("master of" in row.state for row in rows[1:]) == 3
    assert sum("replica of" in row.state and "link up" in row.state for row in rows[1:]) == 3
    assert_demo_user_reads_itself_through_the_proxy(config)
    statuses = read_twice(config)
    assert all(s.startswith("cachegate; hit") for s in statuses[1::2]), statuses
    held = entry_keys_by_node(config)
    assert sum(1 for n in held.values() if n) >= 2, held   # the entries are spread over the masters

    # A master killed: the supervisor starts it again, and it rejoins (as its promoted replica's replica).
    unit = launcher.redis_server(config)
    master = next(row for row in rows[1:] if "master of" in row.state)
    os.kill(master.pid, signal.SIGKILL)

    def rejoined() -> bool:
        now = {row.name: row for row in redis_rows(config)}
        record = launcher.supervisor(config).records().get("redis")
        return (all(row.up for row in now.values()) and now[master.name].pid not in (None, master.pid)
                and record is not None and record.restarts == 1)
    assert wait_until(rejoined, BACK_S, interval=0.1), [str(r) for r in redis_rows(config)]

    pids = unit.pids
    assert len(pids) == 6
    launcher.down(config, say=lines.append)
    assert not any(pid_alive(pid) for pid in pids)
    assert not any(port_open("127.0.0.1", port) for _, port in config.redis.cluster_nodes)
    stopped = [line for line in lines if line.startswith("redis") and "stopped (pid " in line]
    assert stopped and stopped[0].count(",") == 5, lines  # every node's pid
    assert not any(row.up for row in redis_rows(config))
