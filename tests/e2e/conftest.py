"""Fixtures of the end-to-end tests: the whole request path on real sockets (tests/support/world.py)."""
from __future__ import annotations

from tests.support.world import make_world, world  # noqa: F401  (fixtures, found by their names here)
