"""Tags an upstream named (Cache-Tag) on a real Redis: a purge of one refuses, for its fence, the fills that
carry it only because their answer named it; a tag never invalidated refuses nothing."""
from __future__ import annotations

from proxy.store import CacheStore
from tests.support.stores import entity


async def test_a_purged_tag_refuses_fills_their_upstream_tagged_with_it(store: CacheStore) -> None:
    seen = await store.lookup("trip:1")  # this fill's answer was on its way while the purge ran
    assert await store.purge_tag("trips-of-7", fence=0.5) == 0
    assert await store.fill("trip:1", entity(1), seen=seen, upstream_tags=["trips-of-7"]) == "fenced"
    assert (await store.lookup("trip:1")).entry is None


async def test_an_upstream_tag_never_invalidated_refuses_nothing(store: CacheStore) -> None:
    await store.purge_tag("trips-of-7", fence=5.0)
    seen = await store.lookup("trip:2")
    assert await store.fill("trip:2", entity(1), seen=seen, upstream_tags=["trips-of-8"]) == "stored"
