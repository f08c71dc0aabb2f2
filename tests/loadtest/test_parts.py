"""The load test's parts on their own: wrk output judged, counters turned into ratios, targets worded."""
from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import profile, promstats, wrk
from loadtest.summary import targets
from loadtest.target import BareServer

pytestmark = pytest.mark.slow


@pytest.fixture
def bare(tmp_path: Path):
    server = BareServer(tmp_path / "bare.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def script_files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in range(1, 101)))
    put = '{"first_name": "A", "last_name": "B", "email": "a@example.com", "title": ""}'
    patch = '{"title": ""}'
    (tmp_path / "creds.tsv").write_text(f"1\tBearer not-a-real-token\t{put}\t{patch}\n")
    return {"ids": str(tmp_path / "ids.txt"), "creds": str(tmp_path / "creds.tsv")}


def _run(url: str, script: str, args: dict[str, str], tmp_path: Path) -> wrk.WrkResult:
    argv = wrk.command(url, script, connections=4, duration_s=1, script_args=args, cpu=None)
    return wrk.run(argv, tmp_path / f"{script}.txt", limit_s=1)


def test_reads_answered_2xx_make_a_valid_run_with_a_summary(bare, script_files, tmp_path) -> None:
    result = _run(bare.url, "get_uniform", {**script_files, "count": "1"}, tmp_path)
    assert result.problems == [], result.raw
    assert result.summary["cachegate_wrk"] == "get_uniform"
    assert result.requests > 0 and result.summary["non2xx"] == 0
    assert set(result.summary["latency_us"]) >= {"p50", "p75", "p90", "p99", "p99.9", "max"}
    assert (tmp_path / "get_uniform.txt").read_text().startswith("$ ")


def test_non_2xx_answers_make_the_run_invalid(bare, script_files, tmp_path) -> None:
    # The bare handler knows no PUT or PATCH: the mixed script's writes get 405.
    result = _run(bare.url, "mixed", {**script_files, "count": "1", "writes": "0.5"}, tmp_path)
    assert result.summary["writes_sent"] > 0
    assert any("non-2xx" in p for p in result.problems), result.problems
    assert any("status >= 400" in p for p in result.problems), result.problems


def test_socket_errors_make_the_run_invalid(script_files, tmp_path) -> None:
    from stack.net import free_port
    result = _run(f"http://127.0.0.1:{free_port()}", "get_uniform", script_files, tmp_path)
    assert result.problems


def test_a_credentials_file_of_the_wrong_scheme_is_refused(bare, script_files, tmp_path) -> None:
    result = _run(bare.url, "get_basic", script_files, tmp_path)
    assert result.summary is None and result.problems


def _counters(hit: float, miss: float, upstream: float) -> promstats.Counters:
    route = (("outcome", "hit"), ("reason", ""), ("route", "GET /users/{id:int}"))
    return {("cachegate_cache_requests_total", route): hit,
            ("cachegate_cache_requests_total", (("outcome", "miss"), ("reason", ""),
                                                ("route", "GET /users/{id:int}"))): miss,
            ("cachegate_cache_fills_total", (("route", "GET /users/{id:int}"),)): miss,
            ("cachegate_requests_total", (("method", "GET"), ("route", "GET /users/{id:int}"),
                                          ("status", "200"), ("strategy", "read-through"))): hit + miss,
            ("cachegate_upstream_requests_total", (("status", "200"), ("upstream", "users"))): upstream}


def test_hit_ratio_and_upstream_requests_are_deltas_between_scrapes() -> None:
    found = promstats.delta(_counters(10, 5, 5), _counters(100, 15, 15), route="GET /users/{id:int}",
                            upstream="users")
    assert found.requests == 100
    assert found.hit_ratio == pytest.approx(90 / 100)  # fills are counted apart, not as requests
    assert found.upstream == 10


def _point(group: str, rps: float, p99: float, proxy_cpu: float) -> dict:
    return {"group": group, "connections": 64, "rps": rps, "latency_ms": {"p50": p99 / 2, "p99": p99},
            "cpu_us_per_request": {"proxy": proxy_cpu}, "errors": {"connect": 0, "status": 0}, "non2xx": 0,
            "proxy": {"outcomes": {"hit": 10.0}, "route_requests": 10, "upstream_requests": 0}}


def test_targets_say_plainly_what_was_missed_and_by_how_much() -> None:
    found = {t.name.split(",")[0]: t for t in targets([_point("cache-off", 1000, 100, 500),
                                                       _point("cache-on", 2500, 50, 90)])}
    throughput = found["max throughput"]
    assert throughput.met is False and "2.50x instead of 5x, 50% short" in throughput.verdict
    assert found["p99 at 64 connections"].met is False and "0.500" in found["p99 at 64 connections"].measured
    assert "MISSED by 30.0 µs" in next(t.verdict for t in found.values() if t.name.startswith("proxy CPU"))
    met = targets([_point("cache-off", 1000, 100, 500), _point("cache-on", 6000, 10, 40)])
    assert all(t.met for t in met), met


def test_profile_attributes_self_time_to_packages() -> None:
    collapsed = "\n".join([
        "_run_module_as_main (<frozen runpy>:198);Runner.run (asyncio/runners.py:118) 6",
        "_run_module_as_main (<frozen runpy>:198);Runner.run (asyncio/runners.py:118);"
        "Gateway.handle (proxy/handler.py:78);StreamWriter._writelines (aiohttp/http_writer.py:90) 3",
        "Gateway.handle (proxy/handler.py:93) 1",
    ])
    found = profile.analyse(collapsed)
    assert found["samples"] == 10
    areas = {row["area"]: row["percent"] for row in found["areas"]}
    assert areas == {profile.EVENT_LOOP_AREA: 60.0, "aiohttp": 30.0, "cachegate proxy": 10.0}
    inclusive = {row["frame"]: row["percent"] for row in found["top_inclusive"]}
    assert inclusive["Gateway.handle (proxy/handler.py)"] == 40.0
    assert not any("runpy" in frame for frame in inclusive)
