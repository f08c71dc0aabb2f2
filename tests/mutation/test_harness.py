"""The mutation harness itself (`./run mutate`): a fixed sample it must judge right, and an interrupted run.

The sample is two mutants with known answers: one the lookups tests (on the fixtures' real Redis) kill,
and one no test can tell from the original (listed in mutation/equivalent.yaml). If the harness stopped
seeing kills (the copy not the code imported, a test command that never fails), the first assertion fails.
"""
from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mutation.report import load_equivalents, render

REPO = Path(__file__).resolve().parents[2]
KILLABLE = "proxy/lookups.py::_command::ZeroIterationForLoop::for part in parts:"
EQUIVALENT_MODULE = "cdc_changes"
EQUIVALENT = ("invalidator/changes.py::Planner._revocations::ReplaceComparisonOperator_Eq_GtE::"
              "elif change.kind == UPDATE and change.before is not None and change.after is not None:")
pytestmark = pytest.mark.slow


def _tree_state() -> tuple[str, dict[str, str]]:
    """What a run must leave as it was: git's view of the worktree and the bytes of the mutated files."""
    status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout
    files = {path: hashlib.sha256((REPO / path).read_bytes()).hexdigest()
             for path in ("proxy/lookups.py", EQUIVALENT.split("::")[0])}
    return status, files


def _command(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mutation", "--results", str(tmp_path / "results.json"),
            "--report", str(tmp_path / "mutation.md"), "--equivalent", str(tmp_path / "equivalent.yaml"),
            *args]


def test_a_fixed_sample_is_judged_killed_and_survived_and_the_report_gives_the_reason(tmp_path: Path) -> None:
    (tmp_path / "equivalent.yaml").write_text("{}\n")  # nothing listed yet: the equivalent one is open
    before = _tree_state()
    done = subprocess.run(_command(tmp_path, "--module", "lookups", "--module", EQUIVALENT_MODULE,
                                   "--only", KILLABLE, "--only", EQUIVALENT, "--budget", "4"),
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert _tree_state() == before, "the run changed the worktree"
    assert done.returncode == 1, f"an open survivor must fail the command:\n{done.stdout}{done.stderr}"
    results = json.loads((tmp_path / "results.json").read_text())
    killed = results["modules"]["lookups"]["mutants"][KILLABLE]
    assert killed["status"] == "killed", done.stdout
    assert killed["killed_by"].startswith("tests/store/test_lookups.py::"), killed
    assert "-    for part in parts:" in killed["diff"] and "+    for part in []:" in killed["diff"]
    survived = results["modules"][EQUIVALENT_MODULE]["mutants"][EQUIVALENT]
    assert survived["status"] == "survived" and survived["first_survived"], survived
    assert "Answer: **open**" in (tmp_path / "mutation.md").read_text()

    # With the committed reasons, the same results report it equivalent, and the reason with it.
    equivalents = load_equivalents(REPO / "mutation" / "equivalent.yaml")
    report = render(results, equivalents)
    assert f"Answer: equivalent: {equivalents[EQUIVALENT]}" in report
    assert "Answer: **open**" not in report


def test_an_interrupted_run_reports_what_it_did_not_run_and_leaves_no_copy(tmp_path: Path) -> None:
    (tmp_path / "equivalent.yaml").write_text("{}\n")
    before = _tree_state()
    process = subprocess.Popen(_command(tmp_path, "--module", "lookups", "--sample", "6", "--budget", "4"),
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        # The first mutant's verdict: the copy exists and a test run is under way or next.
        for line in process.stdout:
            lines.append(line)
            if ": killed " in line or ": survived " in line:
                break
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = "".join(lines) + rest
    assert process.returncode == 130, output
    copy = next(line.rsplit(": ", 1)[1].strip() for line in lines if "run in a copy of the tree" in line)
    assert not Path(copy).exists(), "the copy of the tree was left behind"
    assert _tree_state() == before, "the interrupted run changed the worktree"
    mutants = json.loads((tmp_path / "results.json").read_text())["modules"]["lookups"]["mutants"]
    assert len(mutants) == 6
    judged = [m for m in mutants.values() if m["status"] != "not run"]
    interrupted = [m for m in mutants.values() if m["killed_by"] == "run interrupted"]
    assert judged and interrupted and len(judged) + len(interrupted) == 6, mutants
    report = (tmp_path / "mutation.md").read_text()
    assert "## Not run" in report and "(run interrupted)" in report
