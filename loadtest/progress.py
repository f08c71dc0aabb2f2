"""A progress bar per step of the load test on stderr (a plain line per step when stderr is no terminal)."""
from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class Bar:
    """`bar.update(done)` as the step advances, `bar.finish(note)` once; redrawn at most ten times a second"""

    def __init__(self, label: str, total: float, unit: str = "", *, stream: TextIO | None = None) -> None:
        self.label, self.total, self.unit = label, max(float(total), 1e-9), unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.done = 0.0
        self._drawn = 0.0
        self._started = time.monotonic()

    def update(self, done: float) -> None:
        self.done = min(float(done), self.total)
        now = time.monotonic()
        if not self.tty or now - self._drawn < 0.1:
            return
        self._drawn = now
        self.stream.write("\r" + self._line())
        self.stream.flush()

    def finish(self, note: str = "") -> None:
        self.done = self.total if not note.startswith("FAILED") else self.done
        elapsed = time.monotonic() - self._started
        line = self._line() + f"  {elapsed:.1f}s" + (f"  {note}" if note else "")
        self.stream.write(("\r" if self.tty else "") + line + "\n")
        self.stream.flush()

    def _line(self) -> str:
        filled = int(WIDTH * self.done / self.total)
        amount = f"{self.done:.0f}/{self.total:.0f}{self.unit}"
        return f"{self.label:<28} [{'#' * filled}{'.' * (WIDTH - filled)}] {amount}"


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
