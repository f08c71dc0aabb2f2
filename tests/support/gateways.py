"""Several real gateway processes over one world: the world's config with a proxy and admin port of each
one's own (same backends, same Redis or Redis Cluster, same prefix), each `python -m proxy`, killed after the test."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stack.net import free_port, http_ok
from stack.process import wait_until


@dataclass
class Gateway:
    popen: subprocess.Popen
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_gateways(config_path: Path, count: int, *,
                         changes: dict[str, Any] | None = None) -> list[Gateway]:
    """`count` gateway processes on copies of the config at `config_path` (with `changes` to its sections);
    returns once every one answers /-/ready."""
    made = []
    for i in range(count):
        data = yaml.safe_load(config_path.read_text())
        for section, values in (changes or {}).items():
            data.setdefault(section, {}).update(values)
        port = free_port()
        data["proxy"]["port"], data["proxy"]["admin"]["port"] = port, free_port()
        path = config_path.with_name(f"config-gw{i}.yaml")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        log_path = config_path.with_name(f"gateway-{i}.log")
        with open(log_path, "wb") as out:
            popen = subprocess.Popen([sys.executable, "-m", "proxy", "--config", str(path)],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        made.append(Gateway(popen, port, log_path))
    for gateway in made:
        up = await asyncio.to_thread(wait_until, lambda: gateway.popen.poll() is not None
                                     or http_ok("127.0.0.1", gateway.port, "/-/ready"), 30)
        assert up and gateway.popen.poll() is None, gateway.log_path.read_text(errors="replace")
    return made


def stop_gateways(gateways: list[Gateway]) -> None:
    for gateway in gateways:
        if gateway.popen.poll() is None:
            os.killpg(gateway.pid, signal.SIGKILL)
            gateway.popen.wait(timeout=10)
