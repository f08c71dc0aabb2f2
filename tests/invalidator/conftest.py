"""Fixtures of the invalidator's tests: the real stack (services, proxy) and the invalidator as processes."""
from __future__ import annotations

from tests.support.invalidatorproc import invalidator_process  # noqa: F401  (a fixture, found by name)
from tests.support.realstack import real_stack  # noqa: F401  (the services and the proxy as processes)
