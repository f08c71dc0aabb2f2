"""The runner's own safeguards: no secret of its stack in what it writes; where a run writes by default."""
from __future__ import annotations

from loadtest.reliability import runner
from loadtest.reliability.ownstack import REPO


def test_a_secret_or_token_about_to_be_written_is_cut_out_and_makes_the_run_invalid():
    run = {"problems": [], "scenarios": [{"note": "admin token s3cret-s3cret-s3cret here"}],
           "suites": {"x": "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"}}
    commands = runner._redact(run, "$ cachegate up\nredis password s3cret-s3cret-s3cret\n",
                              {"s3cret-s3cret-s3cret"})
    assert "s3cret" not in commands and "s3cret" not in str(run) and "eyJhbGciOi" not in str(run)
    assert run["problems"] == ["harness: a secret of the stack was about to be written to commands, results"]


def test_nothing_to_cut_leaves_the_run_as_it_is():
    run = {"problems": [], "scenarios": [{"name": "redis-killed"}]}
    assert runner._redact(run, "$ cachegate down\n", {"s3cret-s3cret-s3cret"}) == "$ cachegate down\n"
    assert run == {"problems": [], "scenarios": [{"name": "redis-killed"}]}


def test_full_runs_write_the_committed_report_quick_runs_an_ignored_folder():
    full = runner._paths(runner.parser().parse_args([]))
    quick = runner._paths(runner.parser().parse_args(["--quick"]))
    assert full == (REPO / "loadtest" / "results" / "reliability", REPO / "reliability.md")
    assert quick[0] == REPO / "loadtest" / "results" / "tmp" / "reliability-quick"
    assert quick[1] == quick[0] / "reliability.md"
