"""The contract every registered strategy keeps, whatever its policy (aiocache's acceptance-test idea)."""
from __future__ import annotations

import re
import time

import pytest

from proxy.records import make_entry
from stack.net import free_port
from strategies.registry import STRATEGIES
from tests.support.strategy_world import CACHE_STATUS, Backend, StrategyWorld, WorldFactory, body_of, context

CACHED = b'{"id": 1, "version": 50, "from": "cache"}'


async def _prime(world: StrategyWorld, key: str = "item:1") -> None:
    """An entry the backend would never produce, so an answer taken from the cache is recognisable."""
    entry = make_entry(200, [("Content-Type", "application/json"), ("ETag", '"50"')], CACHED, version=50,
                       now=time.time(), ttl=60, grace=300)
    assert await world.store.write(key, entry) == "stored"


@pytest.fixture(params=sorted(STRATEGIES))
def name(request: pytest.FixtureRequest) -> str:
    return request.param


class TestStrategyContract:
    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
    async def test_unsafe_methods_are_never_answered_from_the_cache(
            self, world: StrategyWorld, backend: Backend,
                                                                    name: str, method: str) -> None:
        await _prime(world)
        reply = await world.strategy(name).handle(context(name, method, "/items/1", key="item:1"))
        assert reply.body != CACHED
        assert backend.served(method, "/items/1") == 1
        assert re.match(CACHE_STATUS, reply.cache_status)

    async def test_5xx_is_never_stored(self, world: StrategyWorld, backend: Backend, name: str) -> None:
        strategy = world.strategy(name)
        backend.fail_with = 503
        for method in ("GET", "PUT", "GET"):
            reply = await strategy.handle(context(name, method, "/items/1", key="item:1"))
            assert reply.status == 503
            assert (await world.store.lookup("item:1")).entry is None
        assert backend.served("GET", "/items/1") == 2

    async def test_redis_down_still_answers_from_upstream(self, make_world: WorldFactory, backend: Backend,
                                                          name: str) -> None:
        world = await make_world(redis_url=f"redis://127.0.0.1:{free_port()}/0", failures=2)
        strategy = world.strategy(name)
        for method, expected_version in (("GET", 1), ("PUT", 2), ("GET", 2), ("GET", 2), ("PATCH", 3)):
            reply = await strategy.handle(context(name, method, "/items/1", key="item:1"))
            assert reply.status == 200
            assert body_of(reply)["version"] == expected_version
            assert re.match(CACHE_STATUS, reply.cache_status)
            rules = STRATEGIES[name]  # the class says what it does with a method, not its name
            uses_cache = rules.stores and rules.methods is not None and method in rules.methods
            if uses_cache:
                assert reply.cache_status == "cachegate; fwd=bypass; detail=CACHE-UNAVAILABLE"
        assert backend.served("GET", "/items/1") == 3

    async def test_every_answer_says_what_the_cache_did(self, world: StrategyWorld, backend: Backend,
                                                        name: str) -> None:
        strategy = world.strategy(name)
        replies = []
        for method in ("GET", "GET", "PUT", "GET", "DELETE", "GET", "GET"):
            replies.append(await strategy.handle(context(name, method, "/items/1", key="item:1")))
        backend.fail_with = 500
        replies.append(await strategy.handle(context(name, "GET", "/items/2", key="item:2")))
        assert [r.status for r in replies][-1] == 500
        for reply in replies:
            assert re.match(CACHE_STATUS, reply.cache_status), reply.cache_status

    @pytest.mark.parametrize("method", ["GET", "PUT"])
    async def test_cache_off_is_a_plain_bypass(self, world: StrategyWorld, backend: Backend, name: str,
                                               method: str) -> None:
        await _prime(world)
        reply = await world.strategy(name).handle(context(name, method, "/items/1", key="item:1",
                                                          bypass="CACHE-OFF"))
        assert reply.cache_status == "cachegate; fwd=bypass; detail=CACHE-OFF"
        assert reply.body != CACHED and backend.served(method, "/items/1") == 1
        assert (await world.store.lookup("item:1")).entry.body == CACHED  # neither read nor written
