"""`cachegate loadtest --quick` on a freshly started stack: a valid run, a warm cache, a report written."""
from __future__ import annotations

import json

import pytest

from loadtest import runner
from loadtest.summary import group, hit_ratio
from stack import launcher
from stack.net import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def stack_config(make_config):
    """Its own ports, data folder, Redis and MariaDB: the load test starts the whole stack itself."""
    config = make_config.file({
        "redis": {"url": f"redis://127.0.0.1:{free_port()}/0"},
        "mariadb": {"port": free_port()},
        "proxy": {"access_log": False},
        "invalidator": {"enabled": True},  # its section is part of the run
    })
    yield config
    launcher.down(config, say=lambda line: None)  # even when the test failed half-way


def test_quick_run_is_valid_hits_the_cache_and_writes_the_report(stack_config, tmp_path) -> None:
    results, report = tmp_path / "results", tmp_path / "report" / "performance.md"

    code = runner.main(["--config", str(stack_config.path), "--quick", "--results", str(results),
                        "--report", str(report)])

    run = json.loads((results / "results.json").read_text())
    assert code == runner.EXIT_VALID, run["problems"]
    assert run["valid"] and run["problems"] == []
    assert {"cache-off", "cache-on", "bare", "backend", "mixed"} <= {p["group"] for p in run["points"]}
    assert hit_ratio(group(run["points"], "cache-on")) > 0.9
    assert hit_ratio(group(run["points"], "cache-off")) == 0.0  # really switched off, on the same processes
    assert run["proxy_pids"]["before"] == run["proxy_pids"]["after"]
    text = report.read_text()
    found = run["invalidation"]
    assert found["samples"] > 0 and found["events"] > 0 and found["lag_ms"]["p99"] is not None, found
    assert found["cpu_us_per_event"] > 0 and "## Invalidation from the binary log" in text
    assert "**Run: VALID.**" in text and "## Targets" in text and "## Sweep: cache on" in text
    for name in ("performance-throughput.png", "performance-latency.png"):
        assert (report.parent / name).read_bytes().startswith(b"\x89PNG")
    for point in run["points"]:
        assert (results / point["raw"]).is_file(), point["id"]
    # It switched the cache with the admin token, and wrote that token (or Redis's password) nowhere.
    written = (results / "results.json").read_text() + text
    for secret in (stack_config.proxy.admin_token(), stack_config.redis.password()):
        assert secret not in written
    # What the load test started, it stopped.
    assert not any(row.up for row in launcher.status(stack_config))
