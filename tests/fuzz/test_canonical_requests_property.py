"""Property: for any request target, whatever the proxy stores under a key is what the canonical request for
that key returns when asked of the service directly (status and body).

Targets are generated from the pieces that used to make the router, the key and the upstream request
disagree (%2f, %2e, %5c, \\, dot segments, //, escaped digits, fragments) around the ids of entities that
exist and do not, and sent over a plain socket as written. Each example starts from an empty cache and
sends one to three targets, so a later one can meet what an earlier one stored. Derandomized; the example
count bounds the run (no per-example deadline: the machine's load must not decide a verdict).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from proxy.appkeys import GATEWAY, STORE
from tests.fuzz.hostile_http import send
from tests.support.redisclients import admin_client

pytestmark = pytest.mark.slow

# Key name -> (upstream, canonical target for the rest of the key): every read-through rule of config.yaml.
CANONICAL = {"user": ("users", "/users/{}"), "path": ("paths", "/paths/{}"), "trip": ("trips", "/trips/{}"),
             "trip-members": ("trips", "/trips/{}/members"), "user-search": ("users", "/users/search?{}"),
             "user-login": ("users", "/users?{}"), "path-search": ("paths", "/paths/search?{}"),
             "trips": ("trips", "/trips?{}"),
             "user-me": ("users", "/users/me")}  # caller-scoped: only the test's own caller is ever stored
COLLECTIONS = ["users", "paths", "trips", "users", "paths", "trips", "Users", "users/search", "users/me"]
SEPARATORS = ["/", "%2f", "%2F", "%5c", "%5C", "\\", "//", "/./", "/%2e/", "/%2E%2E/users/", "/../users/", ""]
TAILS = ["", "/", "/members", "%2fmembers", "%2Fmembers", "/.", "/..", "%2e", ".", "/%2e%2e", "#x", "%00",
         "%", "%zz", "?x=1", "?last_name=Tester", "?start=Ashford", "?owner={owner}", "?login=fuzzer"]
QUERIES = ["users/search", "paths/search", "trips", "users"]
PAIRS = ["last_name=Tester", "last_name=Tes%74er", "first_name=Fuzzer", "first_name=%46uzzer",
         "start=Ashford", "start=Ash%66ord", "owner={owner}", "login=fuzzer", "login=fuzz%65r", "limit=1",
         "a+b=c", "x=%FF", ";", "", "=", "%2B", "%zz", "+"]
NOISE = ["%", "2f", "2F", "2e", "5c", "/", "\\", ".", "a", "e", "1", "0", "%3", "%31", "%7e", "?", "=", "&",
         "#"]


def digits_escaped(value: str) -> str:
    return "".join(f"%{ord(c):02x}" for c in value)


@st.composite
def targets(draw, ids: list[str]) -> str:
    entity = draw(st.sampled_from(ids))
    shape = draw(st.integers(0, 5))
    if shape == 0:  # free form: the pieces in any order
        pieces = draw(st.lists(st.sampled_from(NOISE + ids + COLLECTIONS), max_size=8))
        return "/" + "".join(pieces)
    if shape == 1:  # a list or a search: keys made of the whole query
        pairs = draw(st.lists(st.sampled_from(PAIRS), min_size=1, max_size=3))
        return f"/{draw(st.sampled_from(QUERIES))}?" + "&".join(pairs).replace("{owner}", ids[0])
    # Half the time each piece is the plain one, so that enough targets reach an entity and fill an entry.
    if draw(st.booleans()):
        entity = draw(st.sampled_from([digits_escaped(entity), "0" + entity, entity + "%2e"]))
    separator = draw(st.sampled_from(SEPARATORS)) if draw(st.booleans()) else "/"
    tail = draw(st.sampled_from(TAILS)).replace("{owner}", ids[0]) if draw(st.booleans()) else ""
    return f"/{draw(st.sampled_from(COLLECTIONS))}{separator}{entity}{tail}"


async def stored_entries(world, redis) -> dict[str, tuple[int, bytes]]:
    """Every servable entry under this test's prefix: key -> (status, body)."""
    store, prefix = world.app[STORE], f"{world.config.cache.prefix}:e:{{"
    found = {}
    async for raw in redis.scan_iter(match=prefix + "*"):
        key = raw.decode()[len(prefix):-1]  # the key in its hash tag's braces
        entry = (await store.lookup(key)).entry
        if entry is not None:
            found[key] = (entry.status, entry.body)
    return found


async def clear_entries(world, redis) -> None:
    prefix = f"{world.config.cache.prefix}:e:"
    keys = [raw async for raw in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)


async def asked_directly(seeded, key: str) -> tuple[int, bytes]:
    name, _, rest = key.partition(":")
    upstream, template = CANONICAL[name]
    if name == "user-me":
        assert rest == str(seeded.user_id), key  # every target went with the test caller's token
    url = URL(seeded.world.config.upstreams[upstream] + template.format(rest).rstrip("?"), encoded=True)
    async with seeded.world.proxy.session.get(url, headers={"Authorization": seeded.bearer}) as resp:
        return resp.status, await resp.read()


@pytest.fixture
async def redis_admin(redis_server):
    """SCAN and DEL are the admin's: the gateway's own user may not list keys."""
    client = admin_client(redis_server)
    yield client
    await client.aclose()


# One seeded world serves every example on purpose (each starts by clearing the cache, not the world):
# Hypothesis would otherwise refuse the function-scoped fixture. Every other health check stays on.
@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_whatever_is_stored_under_a_key_is_what_its_canonical_request_returns(
        seeded, redis_admin, data):
    ids = [str(seeded.user_id), str(seeded.other_id), str(seeded.path_id), str(seeded.trip_id), "987654"]
    world = seeded.world
    await clear_entries(world, redis_admin)
    sent = data.draw(st.lists(targets(ids), min_size=1, max_size=3), label="targets")
    for target in sent:
        status, _, _ = await send(seeded, "GET", target)
        assert status < 500, (target, status)
    for strategy in world.app[GATEWAY].generation.strategies.values():
        await strategy.drain()  # background refreshes have stored what they fetched
    for key, (status, body) in (await stored_entries(world, redis_admin)).items():
        assert (status, body) == await asked_directly(seeded, key), (key, sent)
