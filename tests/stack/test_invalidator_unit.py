"""`cachegate up` with the invalidator: the binary log and the replication user made on a plain server, the
invalidator started after the proxy, restarted by the supervisor when it dies, stopped by `down`."""
from __future__ import annotations

import json
import os
import signal
import urllib.request

import pymysql
import pytest

from stack import launcher
from stack.net import free_port
from stack.process import pid_alive, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.fault]


@pytest.fixture
def invalidated_stack(make_config):
    data_dir = make_config.tmp_path / "own-stack"
    config = make_config.file({
        "redis": {"url": f"redis://127.0.0.1:{free_port()}/0",
                  "password_file": str(data_dir / "secrets" / "redis-password")},
        "proxy": {"admin": {"token_file": str(data_dir / "secrets" / "admin-token")}},
        "mariadb": {"port": free_port()},
        "invalidator": {"enabled": True, "user": "cachegate_cdc",
                        "password_file": str(data_dir / "secrets" / "db-cdc-password")},
    })
    yield config
    launcher.down(config, say=lambda line: None)


def _following(config) -> bool:
    url = f"http://127.0.0.1:{config.invalidator.port}/-/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)["following"] is True
    except OSError:  # not listening yet, or 503 while it connects
        return False


def test_up_runs_the_invalidator_under_the_supervisor(invalidated_stack) -> None:
    config = invalidated_stack
    lines: list[str] = []
    launcher.up(config, seed_users=5, say=lines.append)
    rows = {row.name: row for row in launcher.status(config)}
    assert rows["invalidator"].up and list(rows)[-2:] == ["invalidator", "supervisor"], lines
    assert _following(config)
    # Its user reads the binary log and nothing else.
    password = config.invalidator.password()
    conn = pymysql.connect(host="127.0.0.1", port=config.mariadb.port, user="cachegate_cdc",
                           password=password, ssl_disabled=True)
    with conn, conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cur.fetchall())
        assert "REPLICATION SLAVE" in grants and "BINLOG MONITOR" in grants and "SELECT" not in grants
        cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_metadata")
        assert cur.fetchone() == (1, "ROW", "FULL")

    first = rows["invalidator"].pid
    os.kill(first, signal.SIGKILL)

    def restarted() -> bool:
        row = {r.name: r for r in launcher.status(config)}["invalidator"]
        return row.up and row.pid != first
    assert wait_until(restarted, 30, interval=0.1)
    assert wait_until(lambda: _following(config), 30, interval=0.1)

    launcher.down(config, say=lambda line: None)
    assert not pid_alive(first)
    assert not any(row.up for row in launcher.status(config))
