"""The `cachegate` command: config errors exit 2 with the message only, arguments reach the right command."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stack.cli import ProgressBar, main

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, change) -> Path:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    change(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_config_prints_the_route_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(REPO / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "/users/{id:int}" in out and "read-through" in out


def test_check_config_refuses_a_bad_file_with_its_place_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes = yaml.safe_load((REPO / "config.yaml").read_text())["routes"]
    index = next(i for i, r in enumerate(routes) if "ttl" in r)
    path = write_config(tmp_path, lambda d: d["routes"][index].update(ttl="soon"))
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"routes[{index}].ttl" in err and "soon" in err


def test_a_config_error_in_any_command_is_one_line_on_stderr_without_traceback(tmp_path: Path) -> None:
    path = write_config(tmp_path, lambda d: d["proxy"].update(port="eighty"))
    # --config after the subcommand, as the launcher passes it.
    result = subprocess.run([sys.executable, "-m", "stack.cli", "status", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "proxy.port" in result.stderr and "Traceback" not in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "nope.yaml"), "down"]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_unknown_backend_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backend", "billing", "--config", str(REPO / "config.yaml")]) == 2
    assert "unknown service 'billing'" in capsys.readouterr().err


def test_loadtest_gets_every_argument_after_it(capsys: pytest.CaptureFixture[str]) -> None:
    # The runner's own parser refuses an unknown option: proof that it, not ours, saw the arguments.
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(REPO / "config.yaml"), "loadtest", "--no-such-option"])
    assert exit_info.value.code == 2
    assert "--no-such-option" in capsys.readouterr().err


def test_progress_bar_ends_with_the_total(capsys: pytest.CaptureFixture[str]) -> None:
    bar = ProgressBar(200)
    bar(0, 200)
    bar(200, 200)
    err = capsys.readouterr().err
    assert err.endswith("200/200\n") and "#" * 30 in err
