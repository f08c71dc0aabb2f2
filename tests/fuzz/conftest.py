"""Fixtures of the fuzz tests: the end-to-end world of tests/e2e, seeded with a user, a path and a trip.

tests/e2e/conftest.py is loaded under a name of its own and its fixtures re-exported, so the fuzz tests
run against exactly the harness the end-to-end tests use (real services, real proxy, real Redis and
MariaDB) without a copy of it.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def _load_e2e_conftest() -> Any:
    name = "cachegate_e2e_world"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "e2e" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_e2e = _load_e2e_conftest()
World = _e2e.World
make_world = _e2e.make_world  # re-exported: pytest finds fixtures by the conftest's attributes


@dataclass(frozen=True)
class Seeded:
    """A world with known entities, so that generated requests can reach more than 404."""

    world: Any
    login: str
    password: str
    user_id: int
    bearer: str
    other_id: int
    other_bearer: str
    other_login: str
    path_id: int
    trip_id: int

    @property
    def base_url(self) -> str:
        return str(self.world.proxy.make_url("")).rstrip("/")


@pytest.fixture
async def seeded(make_world: Any) -> Seeded:
    world = await make_world()
    login, password = "fuzzer", "correct-horse-battery"
    user_id, bearer = await world.user(login, password)
    other_id, other_bearer = await world.user("bystander")
    auth = {"Authorization": bearer}
    resp = await world.proxy.post("/paths", json={"start_point": "Ashford", "end_point": "Dover"},
                                  headers=auth)
    assert resp.status == 201, await resp.text()
    path_id = (await resp.json())["id"]
    resp = await world.proxy.post("/trips", headers=auth, json={
        "path_id": path_id, "name": "Channel run", "starts_at": "2030-06-01T09:00:00Z",
        "finishes_at": "2030-06-01T17:00:00Z"})
    assert resp.status == 201, await resp.text()
    trip_id = (await resp.json())["id"]
    return Seeded(world, login, password, user_id, bearer, other_id, other_bearer, "bystander", path_id,
                  trip_id)
