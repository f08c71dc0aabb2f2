"""Fixtures of the end-to-end tests: the whole request path on real sockets (tests/support/world.py)."""
from __future__ import annotations

from tests.support.world import make_world, world  # noqa: F401  (fixtures, found by their names here)
from tests.support.listened import listened  # noqa: F401,E402  (the gateway behind its own listener)
from tests.support.proxyproc import proxy_process  # noqa: F401,E402  (a real proxy process)
from tests.support.realstack import real_stack  # noqa: F401,E402  (the services and the proxy as processes)
