"""The history checker against a real gateway with a planted bug: a write fence that does nothing.

The proxy-killed scenario kills the gateway while the victim's PATCH waits on a locked row, then lets it
commit. With the fence, the victim's old entry is a miss from the moment the write started; without it,
the gateway the supervisor restarts serves the old version to everyone, and the checker must say so. The
whole stack runs from the planted copy (its supervisor too), so the restarted gateway is a planted one.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from loadtest.reliability import runner
from tests.reliability.planted_tree import assert_runs_from, planted_copy

pytestmark = [pytest.mark.slow, pytest.mark.fault, pytest.mark.timeout(300)]


REPO = Path(__file__).resolve().parents[2]


def config_with_invalidator(tmp_path: Path, enabled: bool) -> Path:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["invalidator"]["enabled"] = enabled
    path = tmp_path / "base-config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_disabled_write_fence_makes_the_checker_fail(tmp_path):
    tree = planted_copy(tmp_path / "tree")
    assert_runs_from(tree)
    results, report = tmp_path / "results", tmp_path / "reliability.md"
    # Without the invalidator: it would apply the committed write itself (the next test).
    code = runner.main(["--quick", "--only", "proxy-killed", "--results", str(results),
                        "--report", str(report), "--config", str(config_with_invalidator(tmp_path, False))],
                       tree=tree)

    run = json.loads((results / "results.json").read_text())
    assert run["tree"] == str(tree) and run["supervisor"]
    (scenario,) = run["scenarios"]
    assert scenario["healed"]["by"] == "supervisor", scenario["healed"]
    assert scenario["write_in_flight_at_kill"] and scenario["committed_after_kill"]["committed"]
    counts, found = scenario["checker"]["counts"], scenario["checker"]["violations"]
    victim = f"user:{run['population']['victim']}"
    assert counts["older-than-db"] > 0 and counts["final"] > 0, counts
    # Nobody writes the victim after the kill: its old entry stays, to the end. (Writers whose own writes
    # died with the gateway may show up too, until their next write replaces the entry.)
    assert victim in {v["key"] for v in found["older-than-db"]}
    assert victim in {v["key"] for v in found["final"]}
    assert counts["lost"] == 0   # the write itself is in the database; what is wrong is the cache
    assert code == runner.EXIT_INVALID and not run["valid"]
    assert "**Run: INVALID.**" in report.read_text()


def test_the_invalidator_covers_a_gateway_killed_between_the_commit_and_its_cache_update(tmp_path):
    """The same planted gateway, killed while its write waits on a locked row, which commits after the kill:
    nothing is left to fence the old entry, but the invalidator reads the commit from the binary log and
    drops it, so no read older than the database (past a fence's lifetime) and no stale entry at the end."""
    tree = planted_copy(tmp_path / "tree")
    assert_runs_from(tree)
    results, report = tmp_path / "results", tmp_path / "reliability.md"
    code = runner.main(["--quick", "--only", "proxy-killed", "--results", str(results),
                        "--report", str(report), "--config", str(config_with_invalidator(tmp_path, True))],
                       tree=tree)
    run = json.loads((results / "results.json").read_text())
    (scenario,) = run["scenarios"]
    assert scenario["write_in_flight_at_kill"] and scenario["committed_after_kill"]["committed"]
    counts = scenario["checker"]["counts"]
    assert counts["older-than-db"] == 0 and counts["final"] == 0 and counts["lost"] == 0, counts
    assert code == runner.EXIT_VALID and run["valid"], run.get("problems")
