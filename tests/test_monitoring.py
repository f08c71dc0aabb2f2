"""The Grafana dashboard and Prometheus scrape config (docs/monitoring/): valid, wired to compose.yaml, each
query names only metrics the proxy exports, and a real Prometheus runs each query on a real proxy."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml

from stack.net import free_port
from tests.support.polling import poll
from tests.support.world import make_world, world  # noqa: F401  (fixtures, found by their names here)

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "docs" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "cachegate.json"
SCRAPE = MONITORING / "prometheus.yml"
# PromQL words that are not metric names: functions are told apart by the "(" after them.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries() -> list[str]:
    return [t["expr"] for panel in dashboard()["panels"] for t in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers and lists, ranges, strings left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for found in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[found.end():].lstrip()
        before = expr[found.start() - 1:found.start()]
        if rest.startswith("(") or found.group() in KEYWORDS or before == "$" or before.isdigit():
            continue  # a function, a keyword, a variable, the unit of a duration (offset 5m)
        names.add(found.group())
    return names


def test_the_promql_reader_finds_names_and_only_names():
    quantile = 'histogram_quantile(0.99, sum by (le, outcome) (rate(x_bucket{route=~"$route"}[5m])))'
    assert metric_names(quantile) == {"x_bucket"}
    joined = 'sum(rate(a_total[1m])) / on (job) group_left b and c offset 5m'
    assert metric_names(joined) == {"a_total", "b", "c"}
    assert metric_names('process_resident_memory_bytes{job="x"} / 2^20') == {"process_resident_memory_bytes"}


def exported(text: str) -> set[str]:
    """Every series name a metrics page can carry, from its TYPE lines (a labelled metric with no child yet
    has no sample, but exists)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
        if kind == "counter" and not name.endswith("_total"):
            names.add(f"{name}_total")
    return names


async def traffic(world) -> None:
    uid, auth = await world.user("monty")
    for _ in range(3):
        await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    await world.proxy.get("/users/search", headers={"Authorization": auth})  # a fill refused (400)
    await world.admin.post("/-/admin/purge", json={"key": f"user:{uid}"})


def test_the_dashboard_is_a_provisioned_grafana_dashboard_on_the_provisioned_datasource():
    board = dashboard()
    assert board["uid"] == "cachegate" and board["panels"] and board["schemaVersion"] >= 36
    source = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (datasource,) = source["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/cachegate.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_compose_mounts_the_monitoring_files_and_prometheus_scrapes_the_proxy():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    mounts = [m.split(":")[0] for name in ("prometheus", "grafana")
              for m in compose["services"][name]["volumes"] if m.startswith("./")]
    assert mounts and all((REPO / m).exists() for m in mounts)
    grafana = compose["services"]["grafana"]["volumes"]
    assert "./docs/monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    scrape = yaml.safe_load(SCRAPE.read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/-/metrics"
    host, port = scrape["static_configs"][0]["targets"][0].split(":")
    proxy = compose["services"]["proxy"]
    assert host == "proxy" and f"{port}:{port}".endswith(proxy["ports"][0].split(":", 1)[1])
    assert all(f'job="{scrape["job_name"]}"' in q for q in queries() if "job=" in q)


def test_promtool_accepts_the_scrape_config():
    assert shutil.which("promtool"), "promtool is missing: `./run test` installs it (Debian package)"
    checked = subprocess.run(["promtool", "check", "config", str(SCRAPE)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_every_dashboard_query_names_only_metrics_the_proxy_exports(world):
    await traffic(world)
    text = await (await world.proxy.get("/-/metrics")).text()
    have = exported(text)
    for expr in queries():
        missing = metric_names(expr) - have
        assert not missing, f"{expr}: no such metric {sorted(missing)}"
    assert {"cachegate_cache_requests_total", "cachegate_request_duration_seconds_bucket"} <= \
        set().union(*map(metric_names, queries()))


@pytest.mark.slow
async def test_a_real_prometheus_evaluates_every_dashboard_query_on_a_real_proxy(world, tmp_path):
    assert shutil.which("prometheus"), "prometheus is missing: `./run test` installs it (Debian package)"
    config = yaml.safe_load(SCRAPE.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{world.config.proxy.port}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        await traffic(world)
        async with aiohttp.ClientSession() as http:
            async def query(expr: str) -> dict:
                async with http.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}) as resp:
                    return await resp.json()

            async def scraped_enough() -> bool:  # rate() needs two samples of every series
                try:
                    found = await query('count_over_time(up{job="cachegate-proxy"}[1m])')
                except aiohttp.ClientError:
                    return False
                values = [float(r["value"][1]) for r in found.get("data", {}).get("result", [])]
                return bool(values) and values[0] >= 3

            async def scraped() -> bool:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                return await scraped_enough()

            assert await poll(scraped, 120, interval=0.2), "Prometheus did not scrape the proxy"
            answered = {}
            for expr in queries():
                found = await query(expr.replace("$__rate_interval", "1m").replace("$route", ".*"))
                assert found["status"] == "success", (expr, found)
                answered[expr] = found["data"]["result"]
        empty = [expr for expr, result in answered.items() if not result]
        # With this traffic every panel but the failures' has a series: Redis errors, store rejections,
        # stale answers, 5xx.
        failures = ("redis_errors", "store_rejected", 'outcome=~"stale', 'status=~"5..')
        for expr in empty:
            assert any(name in expr for name in failures), expr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
