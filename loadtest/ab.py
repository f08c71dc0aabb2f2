"""A/B: the hit path's proxy CPU per request of two proxies, measured in turn in one run.

Side A is the anchor (another commit of this repository, or this tree with another config file), side B is
this tree. Each side is a proxy process started from its own source tree, with its own private Redis, in front
of the same running services; the sides are measured alternately (A B B A ...), so that a drift in the
machine's speed falls on both. What is compared is the proxy's utime + stime per completed request (from
/proc), with wrk pinned to one core and the measured proxy to the other, exactly as in the main sweep.

A side whose config names a Redis Cluster (`redis.cluster.nodes`, as config.cluster.yaml does) gets a private
cluster of its own instead (the same number of masters and replicas, free ports), so `--vs
:config.cluster.yaml` measures the hit path on Redis Cluster against the single Redis in one run; each
side's hit ratio (its warm-up pass included) is read from its own /-/metrics at the end.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import yaml

from loadtest import procstat
from loadtest.measure import Measurer, PointSpec
from loadtest.plan import FIXED_CONNECTIONS, REPO, WARM_CONNECTIONS
from loadtest.target import TargetError
from stack.launcher import redis_users
from stack.net import free_port, http_ok
from stack.process import log_tail, spawn, terminate, wait_until
from stack.redis import RedisServer
from stack.redis_cluster import RedisCluster

START_TIMEOUT_S = 30.0
AB_IDS = 2000   # keys read by both sides: enough to spread over Redis, few enough to fill in seconds
SAMPLE = 25     # ids whose Cache-Status is checked after the warm-up


@dataclass(frozen=True)
class SideSpec:
    """What one side runs: the source tree (this one, or a commit of it) and the config file in that tree."""

    label: str
    ref: str | None          # a git revision to check out, or None for this tree as it is
    config: Path | None      # config file, relative to the side's tree; None: the tree's config.yaml
    env: tuple[tuple[str, str], ...] = ()   # CACHEGATE* variables of this side's proxy alone


@dataclass
class Side:
    spec: SideSpec
    tree: Path
    port: int
    admin_port: int
    redis: RedisServer | RedisCluster
    proc: subprocess.Popen | None = None
    cpu_us: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    point_ids: list[str] = field(default_factory=list)
    hit_ratio: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def parse_side(text: str, label: str) -> SideSpec:
    """`REF`, `REF:CONFIG` or `:CONFIG` (this tree, another config file)."""
    ref, _, config = text.partition(":")
    return SideSpec(label, ref or None, Path(config) if config else None)


def parse_env(items: list[str]) -> tuple[tuple[str, str], ...]:
    """`NAME=VALUE` settings of side B (a config override such as CACHEGATE__LOGGING__ACCESS_FORMAT=json)."""
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("CACHEGATE"):
            raise ValueError(f"--vs-env {item!r}: expected CACHEGATE...=VALUE")
        out.append((name, value))
    return tuple(out)


def run_ab(*, anchor: SideSpec, measured: SideSpec, stack_config: Any, bearer: dict[str, str],
           measurer: Measurer, rounds: int, seconds: int, warm_s: int, scratch: Path,
           server_cpus: set[int] | None, say: Callable[[str], None]) -> dict[str, Any]:
    """Start both sides, warm them, measure them in turn; returns the record the report renders."""
    sides: list[Side] = []
    pinned: dict[int, set[int]] = {}
    original_pids = measurer.pids
    try:
        for spec in (anchor, measured):
            side = _prepare(spec, scratch, stack_config)
            sides.append(side)
            _start(side, stack_config, scratch, say)
            if server_cpus is not None:
                pinned.update(procstat.pin([side.pid], server_cpus))
        bearer = _fewer_ids(bearer, scratch)
        ids = Path(bearer["ids"]).read_text().split()
        for side in sides:
            measurer.pids = _pids_of(side)
            # One pass in id order fills every key (a miss costs a backend round trip, about a millisecond).
            measurer.measure(PointSpec(f"ab-warm-{side.spec.label}", side.url, "warm", WARM_CONNECTIONS,
                                       {k: v for k, v in bearer.items() if k != "count"}, ("proxy",),
                                       through_proxy=False, warmup=False,
                                       seconds=max(warm_s, len(ids) // 250 + 1)))
            sample = ids[::max(1, len(ids) // SAMPLE)]
            cold = [i for i in sample if "hit" not in _cache_status(side, bearer, i)]
            if cold:
                measurer.problems.append(f"ab: side {side.spec.label} missed {len(cold)} of the sampled ids "
                                         f"after the warm-up (e.g. {cold[0]})")
        for r in range(rounds):
            order = sides if r % 2 == 0 else list(reversed(sides))
            for side in order:
                measurer.pids = _pids_of(side)
                point = measurer.measure(PointSpec(f"ab-{side.spec.label}-r{r + 1}", side.url, "get_uniform",
                                                   FIXED_CONNECTIONS, bearer, ("proxy",), through_proxy=False,
                                                   warmup=False, seconds=seconds))
                side.cpu_us.append(point["cpu_us_per_request"]["proxy"])
                side.rps.append(point["rps"])
                side.point_ids.append(point["id"])
        for side in sides:
            side.hit_ratio = _hit_ratio(side)
    finally:
        measurer.pids = original_pids
        procstat.unpin(pinned)
        for side in sides:
            _stop(side)
    return _record(sides, rounds, seconds)


def _record(sides: list[Side], rounds: int, seconds: int) -> dict[str, Any]:
    a, b = sides
    paired = [bv / av for av, bv in zip(a.cpu_us, b.cpu_us) if av > 0]
    out: dict[str, Any] = {"rounds": rounds, "seconds": seconds, "connections": FIXED_CONNECTIONS,
                           "sides": []}
    for side in sides:
        out["sides"].append({
            "label": side.spec.label, "ref": side.spec.ref, "config": str(side.spec.config or "config.yaml"),
            "env": dict(side.spec.env),
            "cpu_us_per_request": side.cpu_us, "rps": side.rps, "points": side.point_ids,
            "median_cpu_us": statistics.median(side.cpu_us) if side.cpu_us else None,
            "median_rps": statistics.median(side.rps) if side.rps else None,
            "redis": ("cluster" if isinstance(side.redis, RedisCluster) else "single"),
            "hit_ratio": side.hit_ratio})
    medians = [s["median_cpu_us"] for s in out["sides"]]
    out["ratio_of_medians"] = medians[1] / medians[0] if all(medians) else None
    out["paired_ratios"] = paired
    out["median_paired_ratio"] = statistics.median(paired) if paired else None
    return out


def _prepare(spec: SideSpec, scratch: Path, stack_config: Any) -> Side:
    tree = REPO if spec.ref is None else _checkout(spec.ref, scratch / f"tree-{spec.label}")
    # The stack's ACL users on every side's Redis: a side is configured exactly as the stack's proxy is.
    users = redis_users(stack_config)
    nodes, replicas = _cluster_of(tree / (spec.config or Path("config.yaml")))
    redis: RedisServer | RedisCluster
    if nodes:
        redis = RedisCluster(scratch / f"redis-{spec.label}", "127.0.0.1", [free_port() for _ in range(nodes)],
                             replicas=replicas, users=users, bus_ports=[free_port() for _ in range(nodes)])
    else:
        redis = RedisServer(scratch / f"redis-{spec.label}", "127.0.0.1", free_port(), users=users)
    return Side(spec, tree, free_port(), free_port(), redis)


def _cluster_of(config: Path) -> tuple[int, int]:
    """(nodes, replicas per master) of the config's Redis Cluster; (0, 0) for a single Redis."""
    try:
        data = yaml.safe_load(config.read_text())
        cluster = (data.get("redis") or {}).get("cluster") or {}
        return len(cluster.get("nodes") or []), int(cluster.get("replicas", 1))
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return 0, 0


def _checkout(ref: str, into: Path) -> Path:
    """The files of `ref`, as `git archive` gives them (no work tree of ours is touched)."""
    into.mkdir(parents=True)
    archive = into.with_suffix(".tar")
    try:
        with archive.open("wb") as out:
            subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref], stdout=out, check=True,
                           stderr=subprocess.PIPE, timeout=60)
    except (subprocess.CalledProcessError, OSError) as exc:
        failed = isinstance(exc, subprocess.CalledProcessError)
        detail = exc.stderr.decode(errors="replace").strip() if failed else str(exc)
        raise TargetError(f"cannot check out {ref!r}: {detail}") from None
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    return into


def _start(side: Side, stack_config: Any, scratch: Path, say: Callable[[str], None]) -> None:
    side.redis.start()
    config = side.tree / (side.spec.config or Path("config.yaml"))
    if not config.is_file():
        raise TargetError(f"side {side.spec.label}: no config file {config}")
    data_dir = scratch / f"data-{side.spec.label}"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEGATE")}
    env.update(_overrides(side, stack_config, data_dir, config))
    env.update(side.spec.env)
    env["PYTHONPATH"] = str(side.tree)
    # Trees before the command moved start their proxy through stack.cli; later ones have `python -m proxy`.
    new_style = (side.tree / "proxy" / "__main__.py").is_file()
    module = ["-m", "proxy"] if new_style else ["-m", "stack.cli", "proxy"]
    argv = [sys.executable, *module, "--config", str(config)]
    log_path = scratch / f"proxy-{side.spec.label}.log"
    side.proc = spawn(argv, log_path, env=env, cwd=side.tree)
    proc = side.proc
    def answered() -> bool:
        return proc.poll() is not None or http_ok("127.0.0.1", side.port, "/-/health", timeout=0.5)

    up = wait_until(answered, timeout=START_TIMEOUT_S, interval=0.1)
    if not up or proc.poll() is not None:
        raise TargetError(f"side {side.spec.label}: the proxy did not start:\n{log_tail(log_path)}")
    say(f"ab: side {side.spec.label} ({side.spec.ref or 'this tree'}) on {side.url}, pid {side.pid}")


def _overrides(side: Side, stack: Any, data_dir: Path, config: Path) -> dict[str, str]:
    """Environment overrides that point a side's own config at its ports, its Redis and the shared services.

    Only keys that every version of the config has are set; the secrets are the running stack's.
    """
    users = side.redis.users
    assert users is not None
    single = isinstance(side.redis, RedisServer)
    url = side.redis.url if isinstance(side.redis, RedisServer) else side.redis.urls[0] + "/0"
    out = {
        "CACHEGATE__STACK__DATA_DIR": str(data_dir),
        "CACHEGATE__PROXY__PORT": str(side.port),
        "CACHEGATE__PROXY__WORKERS": "1",
        "CACHEGATE__PROXY__ADMIN__PORT": str(side.admin_port),
        "CACHEGATE__REDIS__URL": url,
        "CACHEGATE_REDIS_PASSWORD": users.gateway_password,
        "CACHEGATE__AUTH__PUBLIC_KEY": str(stack.auth.public_key),
        "CACHEGATE__AUTH__PRIVATE_KEY": str(stack.auth.private_key),
        "CACHEGATE_ADMIN_TOKEN": "ab-" + os.urandom(12).hex(),
    }
    for name, base in stack.upstreams.items():
        out[f"CACHEGATE__UPSTREAMS__{name.upper()}"] = base
    if isinstance(side.redis, RedisCluster):
        out["CACHEGATE__REDIS__CLUSTER__NODES"] = ",".join(f"{h}:{p}" for h, p in side.redis.startup_nodes)
    if single and not _knows_redis_users(config):
        # A tree from before the Redis ACL: its only way to log in is the URL.
        out["CACHEGATE__REDIS__URL"] = (f"redis://{quote(users.gateway_user)}:{quote(users.gateway_password)}"
                                        f"@{side.redis.host}:{side.redis.port}/0")
    if _has_section(config, "invalidator"):
        # No invalidator writes to a side's private Redis: with one configured, the side would find its lag
        # note missing and bypass the routes it covers. The hit path is what is compared.
        out["CACHEGATE__INVALIDATOR__ENABLED"] = "false"
    return out


def _has_section(config: Path, name: str) -> bool:
    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and name in data


def _knows_redis_users(config: Path) -> bool:
    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return True
    redis = data.get("redis") if isinstance(data, dict) else None
    return isinstance(redis, dict) and "username" in redis


def _pids_of(side: Side) -> Callable[[], dict[str, list[int]]]:
    return lambda: {"proxy": [side.pid]}


def _fewer_ids(bearer: dict[str, str], scratch: Path) -> dict[str, str]:
    """The script arguments with at most AB_IDS ids, in a file of the A/B run's own."""
    ids = Path(bearer["ids"]).read_text().split()[:AB_IDS]
    path = scratch / "ab-ids.txt"
    path.write_text("".join(f"{i}\n" for i in ids))
    return {**bearer, "ids": str(path)}


def _hit_ratio(side: Side) -> float | None:
    """Requests served from the cache over every request the side counted (its /-/metrics)."""
    try:
        with urllib.request.urlopen(f"{side.url}/-/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    hits = total = 0.0
    for line in text.splitlines():
        if line.startswith("cachegate_cache_requests_total{"):
            value = float(line.rsplit(" ", 1)[1])
            total += value
            if any(f'outcome="{o}"' in line for o in ("hit", "stale", "stale_error", "revalidated")):
                hits += value
    return hits / total if total else None


def _cache_status(side: Side, bearer: dict[str, str], user_id: str) -> str:
    """Cache-Status of one GET of a user: "hit" once the side is warm."""
    authorization = Path(bearer["creds"]).read_text().splitlines()[0].split("\t")[1]
    request = urllib.request.Request(f"{side.url}/users/{user_id}", headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.headers.get("Cache-Status", "")
    except (OSError, urllib.error.HTTPError) as exc:
        return f"error: {exc}"


def _stop(side: Side) -> None:
    if side.proc is not None and side.proc.poll() is None:
        terminate(side.proc.pid, timeout=10.0, popen=side.proc)
    side.proc = None
    side.redis.stop()


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="cachegate-ab-"))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

