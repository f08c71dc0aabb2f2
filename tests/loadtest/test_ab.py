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
