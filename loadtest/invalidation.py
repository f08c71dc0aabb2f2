"""The invalidator under a write load: lag from a commit to its cache actions applied, and CPU per event.

Writes are made straight in SQL (as a batch job would, around the gateway): `WRITERS` connections update
random seeded users as fast as the database takes them, up to a rate. Meanwhile one more connection
samples: it updates a user, reads its transaction's GTID (@@last_gtid) as soon as COMMIT returned, and
polls the invalidator's /-/health until its applied position holds that GTID. That interval is the lag
(the time from the commit's acknowledgement to every cache action of it applied in Redis), a little more
than the invalidator's own, by the polling. Then the same writes again without the sampler: the invalidator's
CPU time (/proc) over that phase, divided by the row events it read, is its CPU per event.
"""
from __future__ import annotations

import json
import random
import re
import threading
import time
import urllib.request
from typing import Any, Callable

import pymysql

from cachegate.config import Config
from loadtest import procstat
from stack.launcher import runs_invalidator, units
from stack.net import loopback

WRITERS = 4
POLL_S = 0.001        # between two reads of the invalidator's position while a sample waits
SAMPLE_EVERY_S = 0.02
SAMPLE_TIMEOUT_S = 10.0


def measure(config: Config, ids: list[int], *, seconds: float, rate: float,
            say: Callable[[str], None]) -> dict[str, Any]:
    """The section's record; {"skipped": why} when the stack runs no invalidator."""
    if not runs_invalidator(config):
        return {"skipped": "the invalidator is off in this config"}
    pid = next((unit.pid for name, _, unit in units(config) if name == "invalidator"), None)
    if pid is None:
        return {"skipped": "the invalidator is not running"}
    settings = config.invalidator
    assert settings is not None
    base = f"http://{loopback(settings.host)}:{settings.port}"
    shuffled = list(ids)
    random.Random(12).shuffle(shuffled)
    sampled, written = shuffled[:max(1, len(shuffled) // 10)], shuffled[max(1, len(shuffled) // 10):] or ids
    say(f"invalidation: {WRITERS} SQL writers (up to {rate:.0f}/s), {seconds:g} s with the lag sampled, "
        f"{seconds:g} s without (the CPU per event)")
    errors: list[str] = []
    lags: list[float] = []
    timeouts = [0]
    sampler = lambda stop: threading.Thread(  # noqa: E731
        target=_sampler, args=(config, sampled, base, stop, lags, timeouts, errors))
    first = _phase(config, written, rate, seconds, errors, sampler)
    _wait_caught_up(config, base)
    # Without the sampler's polls: every event counted has its cost in, queued ones included.
    events_before, cpu_before = _events(base), procstat.cpu_seconds(pid)
    second = _phase(config, written, rate, seconds, errors, None)
    _wait_caught_up(config, base)
    events_after, cpu_after = _events(base), procstat.cpu_seconds(pid)
    events = events_after - events_before
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    lags.sort()
    return {"seconds": first["seconds"], "writers": WRITERS, "rate_limit": rate,
            "writes": first["writes"] + len(lags),
            "writes_per_s": (first["writes"] + len(lags)) / first["seconds"],
            "samples": len(lags), "timeouts": timeouts[0], "errors": errors[:5],
            "lag_ms": {name: _quantile(lags, q) * 1000 if lags else None
                       for name, q in (("p50", .5), ("p90", .9), ("p99", .99), ("max", 1.0))},
            "cpu_phase": {"seconds": second["seconds"], "writes_per_s": second["writes"] / second["seconds"]},
            "events": events, "cpu_s": cpu,
            "cpu_us_per_event": cpu / events * 1e6 if cpu is not None and events else None,
            "histogram": _histogram(base)}


def _phase(config: Config, ids: list[int], rate: float, seconds: float, errors: list[str],
           extra: Callable[[threading.Event], threading.Thread] | None) -> dict[str, float]:
    stop = threading.Event()
    counts = [0] * WRITERS
    threads = [threading.Thread(target=_writer, args=(config, ids, rate / WRITERS, stop, counts, i, errors))
               for i in range(WRITERS)]
    if extra is not None:
        threads.append(extra(stop))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    stop.wait(seconds)  # the measured phase
    stop.set()
    for thread in threads:
        thread.join(SAMPLE_TIMEOUT_S + 5)
    return {"seconds": time.monotonic() - started, "writes": float(sum(counts))}


def _connect(config: Config) -> pymysql.connections.Connection:
    db = config.mariadb
    return pymysql.connect(host=loopback(db.host), port=db.port, user=db.user, password=db.password(),
                           database=db.database, autocommit=True, ssl_disabled=True)


def _writer(config: Config, ids: list[int], rate: float, stop: threading.Event, counts: list[int], index: int,
            errors: list[str]) -> None:
    conn = _connect(config)
    rng = random.Random(index)
    gap = 1.0 / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("UPDATE users SET title = %s, version = version + 1 WHERE id = %s",
                            (f"lt{counts[index] % 1000}", rng.choice(ids)))
                counts[index] += 1
                next_at += gap
                delay = next_at - time.monotonic()
                if delay > 0:
                    stop.wait(delay)  # the rate limit
    except pymysql.MySQLError as exc:
        errors.append(f"writer {index}: {exc}")
    finally:
        conn.close()


def _sampler(config: Config, ids: list[int], base: str, stop: threading.Event, lags: list[float],
             timeouts: list[int], errors: list[str]) -> None:
    conn = _connect(config)
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("UPDATE users SET title = 'sample', version = version + 1 WHERE id = %s",
                            (random.choice(ids),))
                committed = time.monotonic()
                cur.execute("SELECT @@last_gtid")
                domain, _, seq = cur.fetchone()[0].split("-")
                lag = _applied_after(base, int(domain), int(seq), committed)
                if lag is None:
                    timeouts[0] += 1
                else:
                    lags.append(lag)
                stop.wait(SAMPLE_EVERY_S)  # the pace of the samples
    except pymysql.MySQLError as exc:
        errors.append(f"sampler: {exc}")
    finally:
        conn.close()


def _applied_after(base: str, domain: int, seq: int, committed: float) -> float | None:
    while time.monotonic() - committed < SAMPLE_TIMEOUT_S:
        if _seq(_health(base).get("position", ""), domain) >= seq:
            return time.monotonic() - committed
        time.sleep(POLL_S)  # polling the invalidator's position
    return None


def _wait_caught_up(config: Config, base: str) -> None:
    conn = _connect(config)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            target = cur.fetchone()[0] or ""
    finally:
        conn.close()
    deadline = time.monotonic() + SAMPLE_TIMEOUT_S
    while time.monotonic() < deadline:
        position = _health(base).get("position", "")
        if all(_seq(position, int(g.split("-")[0])) >= int(g.split("-")[2]) for g in target.split(",") if g):
            return
        time.sleep(0.01)  # polling until it has applied everything written


def _seq(position: str, domain: int) -> int:
    for part in position.split(","):
        d, _, rest = part.partition("-")
        if d == str(domain):
            return int(rest.rpartition("-")[2])
    return -1


def _health(base: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(base + "/-/health", timeout=2) as resp:
            return json.load(resp)
    except OSError as exc:  # a 503 answers JSON too
        body = getattr(exc, "read", None)
        try:
            return json.loads(body()) if body else {}
        except (ValueError, OSError):
            return {}


def _metrics(base: str) -> str:
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def _events(base: str) -> float:
    return sum(float(v) for v in re.findall(r"^cachegate_invalidator_events_total\{[^}]*\} ([0-9.e+]+)$",
                                            _metrics(base), re.M))


def _histogram(base: str) -> dict[str, Any]:
    """The invalidator's own lag histogram (commit known to within its probe interval): bucket bounds of
    its p50 and p99."""
    buckets = [(float("inf") if b == "+Inf" else float(b), float(c)) for b, c in re.findall(
        r'^cachegate_invalidator_lag_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', _metrics(base), re.M)]
    if not buckets or buckets[-1][1] == 0:
        return {}
    total = buckets[-1][1]
    found = {}
    for name, q in (("p50_le_ms", .5), ("p99_le_ms", .99)):
        bound = next(b for b, c in buckets if c >= q * total)
        found[name] = None if bound == float("inf") else bound * 1000
    found["count"] = total
    return found


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def render(add: Callable[[str], None], run: dict[str, Any]) -> None:
    found = run.get("invalidation")
    if not found:
        return
    add("## Invalidation from the binary log\n")
    if "skipped" in found:
        add(f"Not measured: {found['skipped']}.\n")
        return
    lag = found["lag_ms"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"
    add(f"{found['writers']} connections updated random seeded users straight in SQL (around the gateway) "
        f"for {found['seconds']:.1f} s, up to {found['rate_limit']:.0f} writes/s: "
        f"{found['writes_per_s']:.0f} "
        f"writes/s. Lag: from COMMIT acknowledged to every cache action of that transaction applied "
        f"(the invalidator's position polled every {POLL_S * 1000:g} ms), {found['samples']} samples"
        f"{', ' + str(found['timeouts']) + ' not applied within 10 s' if found['timeouts'] else ''}. "
        f"CPU per event: the same writes for {found['cpu_phase']['seconds']:.1f} s without the sampler "
        f"({found['cpu_phase']['writes_per_s']:.0f} writes/s), the invalidator's CPU time over the row "
        "events it read (each a user's row: two keys dropped, one tag bumped).\n")
    add("| writes/s | lag p50 (ms) | p90 | p99 | max | row events | invalidator CPU µs/event "
        "| its histogram: p50 ≤ (ms) | p99 ≤ (ms) |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    hist = found.get("histogram") or {}
    cpu = found.get("cpu_us_per_event")
    add(f"| {found['writes_per_s']:.0f} | {ms(lag['p50'])} | {ms(lag['p90'])} | {ms(lag['p99'])} | "
        f"{ms(lag['max'])} | {found['events']:.0f} | {'-' if cpu is None else f'{cpu:.0f}'} | "
        f"{ms(hist.get('p50_le_ms'))} | {ms(hist.get('p99_le_ms'))} |")
    if found.get("errors"):
        add("\nErrors: " + "; ".join(found["errors"]))
    add("")
