"""proxy/revocations.py on a real Redis: recorded in one process, known in another; a lost message or a Redis
that lost its data is caught up with; a revocation is forgotten once every token it voids has expired."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from multidict import CIMultiDict

from proxy.revocations import Revocations
from tests.support.redisclients import admin_client, gateway_client


async def until(predicate: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"not within {within}s"
        await asyncio.sleep(0.01)


@pytest.fixture
async def make(redis_server) -> AsyncIterator[Callable[..., Revocations]]:
    """Revocations sharing one prefix (two gateway processes, as far as Redis can tell), each following."""
    prefix = f"r{uuid.uuid4().hex[:10]}"
    clients: list[aioredis.Redis] = []
    made: list[tuple[Revocations, asyncio.Task]] = []

    def build(**options) -> Revocations:
        client = gateway_client(redis_server)
        clients.append(client)
        revocations = Revocations(client, prefix=prefix, lifetime=options.pop("lifetime", 60.0), timeout=1.0,
                                  **options)
        made.append((revocations, asyncio.get_running_loop().create_task(revocations.run())))
        return revocations

    yield build
    for revocations, follower in made:
        await revocations.stop(follower)
    for client in clients:
        await client.delete(f"{prefix}:revoked")
        await client.aclose()


async def test_recorded_here_known_there(make):
    a, b = make(), make()
    await until(lambda: a.connected.is_set() and b.connected.is_set(), 5)
    await a.record("42", 3)
    assert a.below == {"42": 3}                 # at once where it was recorded
    await until(lambda: b.below.get("42") == 3, 1.0)
    await a.record("42", 2)                     # never lowered by an older change
    await a.record("43", 1)
    await until(lambda: b.below.get("43") == 1, 1.0)
    assert a.below["42"] == b.below["42"] == 3


async def test_the_header_is_consumed_and_stripped(make):
    a = make()
    headers = CIMultiDict([("Content-Type", "application/json"),
                           ("cachegate-revoked-tokens", "user=7; below=2"),
                           ("Cachegate-Revoked-Tokens", "user=007; below=x"), ("ETag", '"3"')])
    await a.absorb(headers)
    assert list(headers.items()) == [("Content-Type", "application/json"), ("ETag", '"3"')]
    assert a.below == {"7": 2}                   # the malformed one is dropped, not recorded
    plain = CIMultiDict([("ETag", '"3"')])
    await a.absorb(plain)
    assert list(plain.items()) == [("ETag", '"3"')]


async def test_a_lost_message_is_caught_up_on_resubscribing(make, redis_server):
    b = make(resync=3600.0)  # no periodic read: only the one after subscribing can find it
    await until(b.connected.is_set, 5)
    raw = admin_client(redis_server)   # what the test does around the gateways
    try:
        await raw.zadd(f"{b.key}", {"9:4": time.time() + 60})   # in the set, never announced
        await raw.client_kill_filter(_type="pubsub")           # the subscription breaks...
        await until(lambda: b.below.get("9") == 4, 2.0)        # ...and the re-read after it finds the record
    finally:
        await raw.aclose()


async def test_the_set_is_read_again_periodically(make, redis_server):
    b = make(resync=0.2)
    await until(b.connected.is_set, 5)
    raw = admin_client(redis_server)   # what the test does around the gateways
    try:
        await raw.zadd(f"{b.key}", {"11:2": time.time() + 60})
        await until(lambda: b.below.get("11") == 2, 1.0)
    finally:
        await raw.aclose()


async def test_a_redis_that_lost_the_set_gets_it_back(make, redis_server):
    a = make(resync=0.2)
    await until(a.connected.is_set, 5)
    await a.record("5", 2)
    raw = admin_client(redis_server)   # what the test does around the gateways
    try:
        await raw.delete(a.key)                                 # as a restart without persistence would
        deadline = time.monotonic() + 2.0
        while not await raw.zscore(a.key, "5:2"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        late = make()                                            # a gateway started afterwards learns it
        await until(lambda: late.below.get("5") == 2, 2.0)
    finally:
        await raw.aclose()


async def test_forgotten_once_every_token_it_voids_has_expired(make):
    now = [time.time()]
    a = make(lifetime=10.0, resync=3600.0, clock=lambda: now[0])
    await until(a.connected.is_set, 5)
    await a.record("8", 2)
    assert a.below == {"8": 2}
    now[0] += 11
    await a.resync()
    assert a.below == {}


async def test_the_revoked_set_has_no_ttl_so_an_evicting_redis_never_drops_it(make, redis_server):
    """A full Redis evicts keys with a TTL (volatile-lru): the revocations must not be among them."""
    a = make()
    await until(lambda: a.connected.is_set(), 5)
    await a.record("44", 2)
    admin = admin_client(redis_server)
    try:
        assert await admin.pttl(a.key) == -1
    finally:
        await admin.aclose()
