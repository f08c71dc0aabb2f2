"""`python -m loadtest.reliability --quick` on a stack of its own: what CI runs of the fault suite."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from loadtest.reliability import runner, scenarios
from loadtest.reliability.checker import RULES

pytestmark = [pytest.mark.slow, pytest.mark.fault, pytest.mark.timeout(400)]


def test_quick_run_is_valid_checks_every_rule_and_leaves_nothing_behind(tmp_path):
    results, report = tmp_path / "results", tmp_path / "reliability.md"

    code = runner.main(["--quick", "--results", str(results), "--report", str(report)])

    run = json.loads((results / "results.json").read_text())
    assert code == runner.EXIT_VALID, (run["problems"], run.get("log_errors"))
    assert run["valid"] and run["problems"] == []
    assert [s["name"] for s in run["scenarios"]] == list(scenarios.QUICK_NAMES)
    for result in run["scenarios"]:
        assert result["checker"]["counts"] == {rule: 0 for rule in RULES}, result["name"]
        # The checks had something to check: acknowledged writes, reads, observations, final reads.
        assert result["writes"]["acknowledged"] > 50 and result["checker"]["reads_checked"] > 500
        assert result["checker"]["observations"] > 100 and result["checker"]["final_reads"] > 100
        assert result["recovered"], result["name"]
        with gzip.open(results / "raw" / result["raw"], "rt") as raw:
            assert sum(1 for _ in raw) > result["operations"]   # a header, then every operation
    by_name = {s["name"]: s for s in run["scenarios"]}
    assert by_name["redis-killed"]["server_errors"] == 0 and by_name["redis-paused"]["server_errors"] == 0
    proxy = by_name["proxy-killed"]
    assert proxy["write_in_flight_at_kill"] and proxy["committed_after_kill"]["committed"]
    assert proxy["no_answer"] > 0
    # Every killed process was brought back by the stack's supervisor, which recorded how it died.
    for result in run["scenarios"]:
        if result["fault"] in ("kill", "proxy-kill"):
            healed = result["healed"]
            assert healed["by"] == "supervisor", (result["name"], healed)
            assert healed["supervisor"]["last_exit"] == "killed by SIGKILL", (result["name"], healed)
    for suite in ("bad_input", "token_attacks"):
        assert run["suites"][suite]["findings"] == [] and run["suites"][suite]["requests"] > 40
    text = report.read_text()
    assert "**Run: VALID.**" in text and "## proxy-killed" in text and "## Token attacks" in text
    # It started a stack of its own (on other ports, in another folder) and stopped all of it; no secret of
    # that stack (the runner checks its own) and no token is in what it wrote.
    assert not Path(run["stack_dir"]).exists()
    commands = (results / "raw" / "commands.txt").read_text()
    # One `cachegate up` started it all; the harness never had to restart anything itself.
    assert commands.count("$ cachegate up") == 1 and "$ cachegate down" in commands
    assert f"--config {run['stack_dir']}/config.yaml" in commands
    written = (results / "results.json").read_text() + text + commands
    assert "eyJhbGciOi" not in written and "PRIVATE KEY" not in written and "<redacted>" not in written
