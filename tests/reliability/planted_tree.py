"""A copy of this tree with one planted bug (the write fence a no-op), for a stack that runs from it.

The copy holds every top-level package of the repository; `PYTHONPATH` and the working directory put it
ahead of the installed (editable) tree, which is checked before any process starts from it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
