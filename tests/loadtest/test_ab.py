"""The A/B comparison's parts: how an anchor is named, how rounds become ratios, a checkout of a commit."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from loadtest import ab
from loadtest.plan import REPO, parser, resolve


def test_an_anchor_is_a_commit_a_commit_with_a_config_or_this_tree_with_another_config() -> None:
    assert ab.parse_side("HEAD~1", "A") == ab.SideSpec("A", "HEAD~1", None)
    assert ab.parse_side("abc123:config.cluster.yaml", "A") == ab.SideSpec("A", "abc123",
                                                                            Path("config.cluster.yaml"))
    assert ab.parse_side(":config.cluster.yaml", "A") == ab.SideSpec("A", None, Path("config.cluster.yaml"))


def _side(label: str, cpu: list[float], tmp_path: Path) -> ab.Side:
    side = ab.Side(ab.SideSpec(label, None, None), tmp_path, 1, 2, None)  # type: ignore[arg-type]
    side.cpu_us, side.rps, side.point_ids = cpu, [1000.0] * len(cpu), [f"p{i}" for i in range(len(cpu))]
    return side


def test_rounds_are_compared_in_pairs_and_as_medians(tmp_path: Path) -> None:
    record = ab._record([_side("A", [200.0, 100.0, 300.0], tmp_path),
                         _side("B", [210.0, 120.0, 300.0], tmp_path)], rounds=3, seconds=1)
    assert record["paired_ratios"] == pytest.approx([1.05, 1.2, 1.0])
    assert record["median_paired_ratio"] == pytest.approx(1.05)
    assert record["ratio_of_medians"] == pytest.approx(210.0 / 200.0)


def test_ab_only_needs_an_anchor() -> None:
    with pytest.raises(ValueError, match="--vs"):
        resolve(parser().parse_args(["--ab-only"]))
    plan, results, report = resolve(parser().parse_args(["--ab-only", "--vs", "HEAD", "--quick"]))
    assert results.name == "quick-ab" and report.parent == results


def test_a_commit_is_checked_out_without_touching_the_work_tree(tmp_path: Path) -> None:
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    tree = ab._checkout("HEAD", tmp_path / "tree")
    assert (tree / "proxy" / "handler.py").is_file() and not (tree / ".git").exists()
    with pytest.raises(ab.TargetError, match="cannot check out"):
        ab._checkout("no-such-revision-anywhere", tmp_path / "other")


def test_side_b_may_carry_settings_of_its_own() -> None:
    assert ab.parse_env(["CACHEGATE__LOGGING__ACCESS_FORMAT=json"]) == (
        ("CACHEGATE__LOGGING__ACCESS_FORMAT", "json"),)
    with pytest.raises(ValueError, match="CACHEGATE"):
        ab.parse_env(["PATH=/tmp"])
    with pytest.raises(ValueError, match="--vs"):
        resolve(parser().parse_args(["--vs-env", "CACHEGATE__LOGGING__ACCESS_FORMAT=json"]))


def test_a_side_runs_without_the_invalidator_its_private_redis_never_hears_from(tmp_path: Path) -> None:
    with_one, without = tmp_path / "with.yaml", tmp_path / "without.yaml"
    with_one.write_text("invalidator:\n  enabled: true\n")
    without.write_text("proxy: {}\n")
    assert ab._has_section(with_one, "invalidator") and not ab._has_section(without, "invalidator")


def test_a_side_on_config_cluster_yaml_gets_a_redis_cluster_of_its_own(tmp_path: Path, make_config) -> None:
    stack = make_config()
    from stack.keys import ensure_secret
    from stack.launcher import redis_admin_password_file
    ensure_secret(redis_admin_password_file(stack))  # as `cachegate up` makes it
    side = ab._prepare(ab.SideSpec("A", None, Path("config.cluster.yaml")), tmp_path, stack)
    assert isinstance(side.redis, ab.RedisCluster)
    assert (side.redis.masters, side.redis.replicas, len(side.redis.nodes)) == (3, 1, 6)
    env = ab._overrides(side, stack, tmp_path, REPO / "config.cluster.yaml")
    assert env["CACHEGATE__REDIS__CLUSTER__NODES"].count(",") == 5
    assert env["CACHEGATE__PROXY__WORKERS"] == "1"   # one process is what is measured
    single = ab._prepare(ab.SideSpec("B", None, None), tmp_path, stack)
    assert isinstance(single.redis, ab.RedisServer)
    assert "CACHEGATE__REDIS__CLUSTER__NODES" not in ab._overrides(single, stack, tmp_path, REPO / "config.yaml")


def test_the_report_says_the_cluster_against_the_single_redis_ratio_and_the_target(tmp_path: Path) -> None:
    from loadtest import sections
    cluster, single = _side("A", [400.0, 300.0, 330.0], tmp_path), _side("B", [300.0, 280.0, 300.0], tmp_path)
    record = ab._record([cluster, single], rounds=3, seconds=1)
    record["sides"][0]["redis"], record["sides"][0]["hit_ratio"] = "cluster", 0.999
    record.update(anchor=":config.cluster.yaml", target=None)
    lines: list[str] = []
    sections.ab(lines.append, {"ab": record}, tmp_path / "performance.md", tmp_path)
    text = "\n".join(lines)
    assert "the hit path's proxy CPU on the cluster is 1.100 × the single Redis's" in text
    assert "target at most 1.3 ×) — met" in text and "cluster 99.9 %" in text
