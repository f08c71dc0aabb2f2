"""SIGTERM to a real proxy process: not ready first (for proxy.drain, still serving), then the listener
closes, the requests in flight finish, and the process exits 0.

Regression (issue 9 part 6): on SIGTERM the proxy stopped at once, /-/ready never told a balancer to stop
sending first.
"""
from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from tests.support.polling import poll

pytestmark = pytest.mark.slow
IN_FLIGHT = 20


async def test_sigterm_drains_then_finishes_what_is_in_flight(proxy_process):
    proc, uid, auth = await proxy_process({"proxy": {"drain": "1s"}}, login="drainer")
    backends = proc.world.backends
    async with aiohttp.ClientSession(proc.base, timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(f"/users/{uid}", headers={"Authorization": auth}) as resp:
            assert resp.status == 200  # filled: a read of it is a hit, which needs no service
        backends.delay = 2.5  # each service request now outlasts the drain

        async def slow(i: int) -> int:
            async with aiohttp.ClientSession(proc.base, timeout=aiohttp.ClientTimeout(total=30)) as own:
                async with own.get(f"/users/search?last_name=Tes&first_name=d{i}",
                                   headers={"Authorization": auth}) as answer:
                    await answer.read()
                    return answer.status

        in_flight = [asyncio.create_task(slow(i)) for i in range(IN_FLIGHT)]
        async def all_arrived() -> bool:
            return backends.served("GET", "/users/search") >= IN_FLIGHT
        assert await poll(all_arrived, 30, interval=0.02), "the requests did not reach the service"
        proc.popen.send_signal(signal.SIGTERM)

        draining: dict = {}

        async def not_ready() -> bool:
            async with http.get("/-/ready") as resp:
                if resp.status == 503:
                    draining.update(await resp.json())
                return resp.status == 503
        assert await poll(not_ready, 30, interval=0.02), "/-/ready never answered 503"
        assert draining["status"] == "draining", draining
        async with http.get(f"/users/{uid}", headers={"Authorization": auth}) as resp:
            assert resp.status == 200  # still serving while balancers take it out
        assert await asyncio.gather(*in_flight) == [200] * IN_FLIGHT  # past the drain: finished all the same
    code = await asyncio.to_thread(proc.popen.wait, 30)
    assert code == 0, proc.log()[-2000:]
    assert "draining: /-/ready answers 503 for 1s" in proc.log()
