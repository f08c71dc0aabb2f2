"""Runs mutants in a copy of the tree: one pytest process per mutant, with a time-out, within a budget.

The worktree is never written: the files git knows (tracked, and new ones not ignored) are copied into a
temporary folder, each mutant is written there and put back after its run, and the folder is removed at the
end, also when the run is interrupted. Every server a test run starts keeps its data under that run's
`--basetemp` inside the copy, so one left behind by a run killed at its time-out is found by that path and
stopped by its pid.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from mutation.mutants import Mutant

KILLED, SURVIVED, TIMEOUT, NOT_RUN = "killed", "survived", "timeout", "not run"
# Only the plugins the targeted tests use: the others (schemathesis, hypothesis' reporter) cost seconds of
# start-up per mutant.
PLUGINS = ("pytest_asyncio.plugin", "pytest_timeout", "pytest_aiohttp.plugin")
INTERRUPT_GRACE = 20.0  # seconds pytest gets after SIGINT to stop the servers its fixtures started
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)
_ERROR_LINE = re.compile(r"^E +(\S.*)$", re.MULTILINE)


@dataclass
class Outcome:
    status: str
    killed_by: str = ""
    seconds: float = 0.0
    output: str = ""


@dataclass
class Copy:
    """The temporary copy of the tree the tests run in."""

    root: Path
    runs: int = 0
    originals: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, source: Path) -> "Copy":
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=source, check=True, capture_output=True).stdout.split(b"\0")
        root = Path(tempfile.mkdtemp(prefix="cachegate-mutation-"))
        for name in filter(None, (entry.decode() for entry in listed)):
            origin = source / name
            if origin.is_file():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, root / name)
        return cls(root)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def source(self, path: str) -> str:
        if path not in self.originals:
            self.originals[path] = (self.root / path).read_text()
        return self.originals[path]

    def apply(self, mutant: Mutant) -> None:
        (self.root / mutant.path).write_text(mutant.mutated(self.source(mutant.path)))

    def restore(self, path: str) -> None:
        if path in self.originals:
            (self.root / path).write_text(self.originals[path])

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.root), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                # A mutant and the original it replaces may share a size and an mtime second: never let
                # Python trust a cached .pyc of the copy.
                "PYTHONDONTWRITEBYTECODE": "1"}

    def check_imports(self, path: str) -> None:
        """The copy, not the worktree the project is installed from, must be what the tests import."""
        module = path.removesuffix(".py").replace("/", ".")
        found = subprocess.run([sys.executable, "-c", f"import {module}; print({module}.__file__)"],
                               cwd=self.root, env=self.env(), capture_output=True, text=True)
        if found.returncode != 0 or not Path(found.stdout.strip()).is_relative_to(self.root):
            raise RuntimeError(f"{module} is not imported from the copy {self.root}: {found.stdout}"
                               f"{found.stderr}")

    def pytest(self, tests: tuple[str, ...], timeout: float) -> Outcome:
        self.runs += 1
        basetemp = self.root / ".mutation-tmp" / f"run{self.runs}"
        basetemp.parent.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                   *(arg for plugin in PLUGINS for arg in ("-p", plugin)),
                   "-x", "-q", "-rfE", "--no-header", f"--basetemp={basetemp}", *tests]
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=self.root, env=self.env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            output = _interrupt(process)
            _stop_strays(basetemp)
            return Outcome(TIMEOUT, f"no answer in {timeout:.0f}s", time.monotonic() - started,
                           output.decode(errors="replace"))
        except BaseException:  # Ctrl-C of the whole run: its tests stop their servers first
            _interrupt(process)
            _stop_strays(basetemp)
            raise
        text = output.decode(errors="replace")
        seconds = time.monotonic() - started
        if process.returncode == 0:
            return Outcome(SURVIVED, "", seconds, text)
        failed = _FAILED.search(text)
        if failed:
            detail = failed.group(1)
        else:  # the tests never ran: the mutant broke an import (a conftest's), or pytest itself
            error = _ERROR_LINE.search(text)
            detail = f"pytest exit {process.returncode}" + (f": {error.group(1)[:100]}" if error else "")
        return Outcome(KILLED, detail, seconds, text)


def _interrupt(process: subprocess.Popen) -> bytes:
    """SIGINT first (pytest then runs its fixtures' teardown, which stops the servers), SIGKILL after."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=INTERRUPT_GRACE)
        return output or b""
    except ProcessLookupError:
        return process.communicate()[0] or b""
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return process.communicate()[0] or b""


def _stop_strays(basetemp: Path) -> None:
    """Servers the run started and left: their command line or working folder names its basetemp."""
    mark = str(basetemp)
    for pid in _pids_under(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _pids_under(mark: str) -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if mark in cmdline or cwd.startswith(mark):
            yield int(entry.name)


@dataclass
class Plan:
    """What one module's run does: its mutants in order, its time-out, its deadline."""

    name: str
    tests: tuple[str, ...]
    mutants: list[Mutant]


def run_baseline(copy: Copy, plan: Plan, *, deadline: float) -> tuple[Outcome, float]:
    """The module's tests on the unmutated copy (they must pass), and the time-out each mutant gets from it:
    twice the baseline's time and 15 s more (a mutant that makes a test wait for what never comes)."""
    if plan.mutants:
        copy.check_imports(plan.mutants[0].path)
    baseline = copy.pytest(plan.tests, timeout=max(120.0, deadline - time.monotonic()))
    if baseline.status != SURVIVED:
        # Once more: a test that fails now and then on a loaded machine is no reason to judge no mutant. A
        # test that fails twice unmutated is; its output goes to the report.
        baseline = copy.pytest(plan.tests, timeout=max(120.0, deadline - time.monotonic()))
    return baseline, 2 * baseline.seconds + 15


def run_mutants(copy: Copy, plan: Plan, mutants: list[Mutant], *, baseline: Outcome, timeout: float,
                deadline: float, report: Callable[[Mutant, Outcome], None]) -> list[Mutant]:
    """Each mutant while a run as long as the baseline still fits before `deadline`; returns those left."""
    left = []
    for mutant in mutants:
        if left or time.monotonic() + baseline.seconds > deadline:
            left.append(mutant)
            continue
        copy.apply(mutant)
        try:
            outcome = copy.pytest(plan.tests, timeout=timeout)
        finally:
            copy.restore(mutant.path)
        report(mutant, outcome)
    return left
