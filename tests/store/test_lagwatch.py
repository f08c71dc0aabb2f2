"""The gateway's view of the invalidator (proxy/lagwatch.py) on a real Redis: behind without a note, past
the bound, caught up within it; a Redis that stops answering does not by itself turn the cache off."""
from __future__ import annotations

import os
import signal

from proxy.lagwatch import NOTE, LagWatch, format_note
from tests.support.polling import poll
from tests.support.stores import client_for


async def test_the_watch_follows_the_note_and_the_bound(make_store, redis_client) -> None:
    store = make_store(redis_client)
    now = [1000.0]
    seen: list[bool] = []
    watch = LagWatch(store, bound=2.0, interval=0.05, on_change=seen.append, clock=lambda: now[0])
    await watch.check()
    assert seen == [True] and watch.lag is None  # no note: never reported
    await store.write_note(NOTE, format_note(999.5, "0-1-5"))
    await watch.check()
    assert seen == [True, False] and watch.lag == 0.5
    now[0] = 1002.0
    await watch.check()
    assert seen == [True, False, True]  # 2.5 s behind
    await store.write_note(NOTE, format_note(1001.9, "0-1-6"))
    await watch.check()
    assert seen == [True, False, True, False]


async def test_redis_away_keeps_the_last_note_which_ages(make_store, redis_factory) -> None:
    server = redis_factory()
    client = client_for(server, timeout=0.2)
    store = make_store(client, timeout=0.2, failures=100)
    now = [1000.0]
    seen: list[bool] = []
    watch = LagWatch(store, bound=2.0, interval=0.01, on_change=seen.append, clock=lambda: now[0])
    await store.write_note(NOTE, format_note(999.9, "0-1-5"))
    await watch.check()
    assert seen == [False]
    os.kill(server.pid, signal.SIGSTOP)
    try:
        await watch.check()
        assert seen == [False]  # a read that failed changes nothing by itself
        now[0] = 1003.0
        await watch.check()
        assert seen == [False, True]  # but the last note read ages past the bound
    finally:
        os.kill(server.pid, signal.SIGCONT)
    await store.write_note(NOTE, format_note(1002.9, "0-1-6"))

    async def caught_up() -> bool:
        await watch.check()
        return seen[-1] is False
    assert await poll(caught_up, 5)
    await client.aclose()
