"""Fixtures of the fuzz tests: the end-to-end world (tests/support/world.py), a user, a path and a trip."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.world import make_world, world  # noqa: F401  (fixtures: the harness the e2e tests use)


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
