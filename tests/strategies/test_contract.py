"""The contract every registered strategy keeps, whatever its policy (aiocache's acceptance-test idea)."""
from __future__ import annotations

import math
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
        """Not only well-formed (RFC 9211): the right member for a miss that stored, a hit and its ttl left,
        a stale answer, each bypass, a write, a failed fetch."""
        assert name in SAYS, f"{name}: say in SAYS what Cache-Status each step must carry"
        strategy = world.strategy(name, jitter=0.0)
        stale = make_entry(200, [("Content-Type", "application/json"), ("ETag", '"50"')], CACHED, version=50,
                           now=time.time() - 120, ttl=60, grace=300)  # fresh until a minute ago
        assert await world.store.write("item:3", stale) == "stored"
        for step, (method, path, key, expected) in zip(STEPS, SAYS[name], strict=True):
            if step == "upstream-fails":
                backend.fail_with = 500
            # The entry an answer from the cache comes from (a stale answer's refresh may replace it after)
            entry = (await world.store.lookup(key)).entry if key is not None else None
            before = time.time()
            reply = await strategy.handle(context(name, method, path, key=key, ttl=60.0, grace=300.0))
            after = time.time()
            said = reply.cache_status
            if "{ttl}" not in expected:
                assert said == expected, (step, said)
                continue
            found = re.fullmatch(re.escape(expected).replace(r"\{ttl\}", "(-?[0-9]+)"), said)
            assert found, (step, said, expected)
            assert entry is not None, step  # the ttl said is that entry's freshness left
            left = int(found.group(1))
            assert math.floor(entry.fresh_until - after) <= left <= math.floor(entry.fresh_until - before), \
                (step, said, entry.fresh_until - after)

    @pytest.mark.parametrize("method", ["GET", "PUT"])
    async def test_cache_off_is_a_plain_bypass(self, world: StrategyWorld, backend: Backend, name: str,
                                               method: str) -> None:
        await _prime(world)
        reply = await world.strategy(name).handle(context(name, method, "/items/1", key="item:1",
                                                          bypass="CACHE-OFF"))
        assert reply.cache_status == "cachegate; fwd=bypass; detail=CACHE-OFF"
        assert reply.body != CACHED and backend.served(method, "/items/1") == 1
        assert (await world.store.lookup("item:1")).entry.body == CACHED  # neither read nor written


# The steps of the contract above, in order: (method, path, key) and then what each strategy must say.
STEPS = ("miss", "hit", "stale", "no-key", "write", "after-write", "delete", "upstream-fails")
_TARGETS = [("GET", "/items/1", "item:1"), ("GET", "/items/1", "item:1"), ("GET", "/items/3", "item:3"),
            ("GET", "/items/1", None), ("PUT", "/items/1", "item:1"), ("GET", "/items/1", "item:1"),
            ("DELETE", "/items/1", "item:1"), ("GET", "/items/2", "item:2")]
_RT = ["cachegate; fwd=miss; fwd-status=200; stored",
       "cachegate; hit; ttl={ttl}",
       "cachegate; hit; ttl={ttl}; detail=stale-while-revalidate",
       "cachegate; fwd=bypass; detail=no-key",
       "cachegate; fwd=method",                  # a read-through rule forwards a write as it is
       "cachegate; hit; ttl={ttl}",              # ...and leaves its entry (the write rule's job)
       "cachegate; fwd=method",
       "cachegate; fwd=miss; fwd-status=500; detail=status-500"]
_WT = ["cachegate; fwd=bypass; detail=write-through"] * 4 + [
       "cachegate; fwd=method; fwd-status=200; stored",
       "cachegate; fwd=bypass; detail=write-through",
       "cachegate; fwd=method; fwd-status=200; detail=tombstone",
       "cachegate; fwd=bypass; detail=write-through"]
SAYS = {name: [(*target, said) for target, said in zip(_TARGETS, says, strict=True)]
        for name, says in (("read-through", _RT), ("write-through", _WT),
                           ("passthrough", ["cachegate; fwd=bypass; detail=passthrough"] * len(STEPS)))}
