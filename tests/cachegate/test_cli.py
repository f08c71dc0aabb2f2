"""The `cachegate` command: config errors exit 2 with the message only (as the proxy says them), arguments
reach the right command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cachegate.cli import ProgressBar, main
from stack.net import free_port, port_open

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
    result = subprocess.run([sys.executable, "-m", "cachegate", "status", "--config", str(path)],
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


def test_check_config_refuses_a_config_without_admin_token_as_the_proxy_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, lambda d: d["proxy"]["admin"].pop("token_file"))
    assert main(["check-config", str(path)]) == 2
    checked = capsys.readouterr().err
    assert "proxy.admin.token_file: no admin token configured" in checked
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEGATE")}
    proxy = subprocess.run([sys.executable, "-m", "cachegate", "proxy", "--config", str(path)],
                           capture_output=True, text=True, timeout=60, env=env)
    assert proxy.returncode == 2 and proxy.stderr.strip() == checked.strip()


def test_the_proxy_refuses_to_start_when_its_token_file_is_missing(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()

    def change(data) -> None:
        data["proxy"].update(port=port)
        data["proxy"]["admin"].update(port=admin_port, token_file=str(tmp_path / "no-such-token"))
        data["redis"]["password_file"] = str(tmp_path / "redis-password")

    path = write_config(tmp_path, change)
    (tmp_path / "redis-password").write_text("a-redis-password\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEGATE")}
    result = subprocess.run([sys.executable, "-m", "cachegate", "proxy", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stderr
    assert "proxy.admin.token_file: cannot read" in result.stderr and "Traceback" not in result.stderr
    assert not port_open("127.0.0.1", port) and not port_open("127.0.0.1", admin_port)


@pytest.mark.parametrize("token", [None, "", "too-short"], ids=["missing", "empty", "short"])
def test_the_proxy_refuses_to_start_an_admin_listener_off_loopback_without_a_token(tmp_path: Path,
                                                                                  token: str | None) -> None:
    """On 0.0.0.0 every host that reaches the port is a caller: no usable token, no listener (exit 2 before
    any port is bound, naming the key and why)."""
    port, admin_port = free_port(), free_port()

    def change(data) -> None:
        data["proxy"].update(port=port)
        data["proxy"]["admin"].update(host="0.0.0.0", port=admin_port,
                                      token_file=str(tmp_path / "admin-token"))
        data["redis"]["password_file"] = str(tmp_path / "redis-password")

    path = write_config(tmp_path, change)
    (tmp_path / "redis-password").write_text("a-redis-password\n")
    if token is not None:
        (tmp_path / "admin-token").write_text(token + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEGATE")}
    result = subprocess.run([sys.executable, "-m", "cachegate", "proxy", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stderr
    why = {None: "cannot read", "": "is empty", "too-short": "the admin token is too short"}[token]
    assert "proxy.admin.token_file: " in result.stderr and why in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not port_open("127.0.0.1", port) and not port_open("127.0.0.1", admin_port)


def test_admin_verbs_say_why_when_no_listener_answers(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    admin_port = free_port()

    def change(data) -> None:
        data["proxy"]["admin"].update(port=admin_port, token_file=str(tmp_path / "admin-token"))

    path = write_config(tmp_path, change)
    assert main(["admin", "state", "--config", str(path)]) == 2  # no token file yet: a config error
    assert "proxy.admin.token_file: cannot read" in capsys.readouterr().err
    (tmp_path / "admin-token").write_text("a-long-enough-admin-token\n")
    assert main(["admin", "cache", "off", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"no admin listener at http://127.0.0.1:{admin_port}" in err and "Traceback" not in err


def _refusals(
        path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """What `cachegate check-config` says of a file, and what the proxy says when it is started with it."""
    for name in [n for n in os.environ if n.startswith("CACHEGATE")]:
        monkeypatch.delenv(name)
    assert main(["check-config", str(path)]) == 2
    checked = capsys.readouterr().err.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEGATE")}
    proxy = subprocess.run([sys.executable, "-m", "proxy", "--config", str(path)], capture_output=True,
                           text=True, timeout=60, env=env)
    assert proxy.returncode == 2 and "Traceback" not in proxy.stderr, proxy.stderr
    return checked, proxy.stderr.strip()


def test_check_config_refuses_an_admin_listener_on_the_api_address_as_the_proxy_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: check-config passed a file whose admin listener takes the API's port; the proxy then
    failed to bind it."""
    port = free_port()
    def change(data) -> None:
        data["proxy"].update(port=port)
        data["proxy"]["admin"].update(port=port)

    path = write_config(tmp_path, change)
    checked, started = _refusals(path, capsys, monkeypatch)
    assert f"proxy.admin.port: must differ from proxy.port ({port})" in checked
    assert started == checked


def test_check_config_refuses_a_redis_user_without_a_password_as_the_proxy_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the rule was checked only when the proxy asked for the password, after check-config."""
    path = write_config(tmp_path, lambda d: d["redis"].pop("password_file"))
    checked, started = _refusals(path, capsys, monkeypatch)
    assert "redis.username: cachegate needs a password" in checked
    assert started == checked
