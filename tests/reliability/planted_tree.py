"""A copy of this tree with one planted bug (the write fence a no-op), and proxies started from it.

The copy holds every top-level package of the repository; `PYTHONPATH` and the working directory put it
ahead of the installed (editable) tree, which is checked before any proxy starts from it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from loadtest.reliability.faults import wait_for
from loadtest.reliability.ownstack import OwnStack
from stack.net import http_ok

REPO = Path(__file__).resolve().parents[2]
FENCE = "async def _fence("
PLANTED = "        return  # planted bug: the write fence is a no-op\n"


def planted_copy(into: Path) -> Path:
    """Every package of the repository under `into`, with WriteThrough._fence returning at once."""
    for entry in REPO.iterdir():
        if entry.is_dir() and (entry / "__init__.py").is_file():
            shutil.copytree(entry, into / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
    module = into / "strategies" / "write_through.py"
    lines = module.read_text().splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if FENCE in line), None)
    assert at is not None, f"{module}: no {FENCE!r} to plant the bug in"
    while not lines[at].rstrip().endswith(":"):   # the signature may span lines
        at += 1
    lines.insert(at + 1, PLANTED)
    module.write_text("".join(lines))
    return into


def _env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEGATE")}
    env["PYTHONPATH"] = str(tree)
    return env


def assert_runs_from(tree: Path) -> None:
    """The planted module, not the installed one, is what a process started like the proxy imports."""
    found = subprocess.run([sys.executable, "-c", "import strategies.write_through as m; print(m.__file__)"],
                           cwd=tree, env=_env(tree), capture_output=True, text=True, timeout=60, check=True)
    assert Path(found.stdout.strip()) == tree / "strategies" / "write_through.py", found.stdout
    assert PLANTED in Path(found.stdout.strip()).read_text()


class PlantedProxies:
    """Starts proxies from the planted tree on a stack's port (each with the stack's pid file); stops them."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.procs: list[subprocess.Popen] = []

    def for_stack(self, stack: OwnStack) -> Callable[[], int]:
        def start() -> int:
            cli = "cachegate.cli" if (self.tree / "cachegate" / "cli.py").is_file() else "stack.cli"
            argv = [sys.executable, "-m", cli, "proxy", "--config", str(stack.config_path)]
            log_path = stack.data_dir / "logs" / "planted-proxy.log"
            with log_path.open("ab") as log:
                proc = subprocess.Popen(argv, cwd=self.tree, env=_env(self.tree), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=log, start_new_session=True)
            self.procs.append(proc)
            stack.pid_file("proxy").write_text(f"{proc.pid}\n")
            port = stack.config.proxy.port
            up = wait_for(lambda: proc.poll() is not None or http_ok("127.0.0.1", port, "/-/health", 0.5), 60)
            assert up and proc.poll() is None, log_path.read_text()[-2000:]
            return proc.pid
        return start

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
