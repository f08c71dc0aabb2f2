"""run_service as a real process: it serves on config.services[name] and stops cleanly on SIGTERM."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from backends.migrate import migrate
from backends.runner import run_service
from tests.support.services import profile

REPO = Path(__file__).resolve().parents[2]


async def wait_for_port(host: str, port: int, proc: subprocess.Popen, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the service exited with {proc.returncode}"
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise AssertionError(f"nothing listened on {host}:{port} within {deadline_s}s")


@pytest.mark.slow
async def test_service_process_serves_and_stops_on_sigterm(make_config, tmp_path):
    config = make_config.file()
    await migrate(config)
    where = config.services["users"]
    log = (tmp_path / "users.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "backends.runner", "users", str(config.path)],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        await wait_for_port(where.host, where.port, proc)
        base = f"http://{where.host}:{where.port}"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/users", json=profile("runner")) as resp:
                assert resp.status == 201
            async with session.get(f"{base}/users/me") as resp:
                assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    assert "Traceback" not in (tmp_path / "users.log").read_text()


def test_unknown_service_is_refused(make_config):
    with pytest.raises(ValueError, match="unknown service 'admin'"):
        run_service("admin", make_config())
