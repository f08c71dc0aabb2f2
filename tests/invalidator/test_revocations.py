"""Tokens revoked in SQL (a user deleted, a token version raised) are refused by the gateway, cached routes
included; and the gap of a gateway that died after forwarding a DELETE, before recording its revocation."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal

import aiohttp
import pytest

from backends.seed import credentials_path
from stack.net import free_port
from tests.support.configs import deep_merge, on_cluster
from tests.support.holdingrelay import HoldingRelay
from tests.support.invalidatorproc import sql, trusted
from tests.support.polling import poll

pytestmark = [pytest.mark.slow]
ON = {"invalidator": {"enabled": True}}


def caller_of(authorization: str) -> int:
    payload = authorization.split()[1].split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


async def _status(http, stack, path: str) -> tuple[int, str]:
    async with http.get(stack.base + path, headers={"Authorization": stack.authorization}) as resp:
        body = await resp.text()
        return resp.status, body


def bound(config) -> float:
    return config.invalidator.lag_bound + config.invalidator.check_interval


@pytest.mark.parametrize(("change", "topology"),
                         [("delete", "single"), ("token_version", "single"), ("token_version", "cluster")])
async def test_a_token_revoked_in_sql_is_refused_even_on_a_cached_route(real_stack, invalidator_process,
                                                                        request, change, topology):
    """On a Redis Cluster the revocation goes out through the cluster's pub/sub."""
    overrides = ON if topology == "single" else deep_merge(on_cluster(request.getfixturevalue("redis_cluster")),
                                                            ON)
    stack = await real_stack(overrides, users=10)
    invalidator = invalidator_process(stack.config)
    await invalidator.start()
    me = caller_of(stack.authorization)
    other = next(i for i in stack.ids if i != me)
    async with aiohttp.ClientSession() as http:
        await trusted(http, stack)  # the last user's profile is a hit for this token
        path = f"/users/{stack.ids[-1]}"
        assert (await _status(http, stack, path))[0] == 200
        if change == "delete":
            sql(stack.config, "DELETE FROM users WHERE id = %s", (me,))
        else:  # a password reset by an administrator: every token issued before is void
            sql(stack.config, "UPDATE users SET token_version = token_version + 1, version = version + 1 "
                              "WHERE id = %s", (me,))
        seen: list[tuple[int, str]] = []

        async def refused() -> bool:
            seen.append(await _status(http, stack, path))
            return seen[-1][0] == 401
        assert await poll(refused, bound(stack.config), interval=0.01), seen[-1]
        assert "token_revoked" in seen[-1][1]
        assert (await _status(http, stack, f"/users/{other}"))[0] == 401


async def test_a_gateway_killed_between_the_commit_and_its_cache_update_leaves_nothing_stale(
        real_stack, invalidator_process):
    relay = HoldingRelay()
    await relay.start()
    try:
        port = free_port()
        relay.target = f"http://127.0.0.1:{port}"
        stack = await real_stack({**ON, "upstreams": {"users": relay.url},
                                  "services": {"users": {"host": "127.0.0.1", "port": port}}}, users=10)
        invalidator = invalidator_process(stack.config)
        await invalidator.start()
        me = caller_of(stack.authorization)
        async with aiohttp.ClientSession() as http:
            await trusted(http, stack)
            for _ in range(2):  # the user's own profile cached, public view
                assert (await _status(http, stack, f"/users/{me}"))[0] == 200
            relay.hold_method("DELETE", f"/users/{me}")
            deleting = asyncio.create_task(http.delete(stack.base + f"/users/{me}",
                                                       headers={"Authorization": stack.authorization}))
            await asyncio.wait_for(relay.fetched.wait(), 10)  # the users service has committed the DELETE
            os.killpg(stack.proxy.pid, signal.SIGKILL)  # before the gateway records anything of it
            stack.proxy.wait(timeout=10)
            with pytest.raises(aiohttp.ClientError):
                await deleting
            relay.release()
            await stack.start_proxy()
            seen: list[tuple[int, str]] = []

            async def refused() -> bool:
                seen.append(await _status(http, stack, f"/users/{stack.ids[-1]}"))
                return seen[-1][0] == 401
            assert await poll(refused, bound(stack.config), interval=0.01), seen[-1]
            # And the deleted user's profile, cached before the crash, is gone for everyone else.
            other = await _token_of(http, stack, 1)

            async def gone() -> bool:
                async with http.get(stack.base + f"/users/{me}", headers={"Authorization": other}) as resp:
                    return resp.status == 404
            assert await poll(gone, bound(stack.config), interval=0.01)
    finally:
        await relay.stop()


async def _token_of(http, stack, index: int) -> str:
    """A Bearer header of the index-th known seeded user."""
    known = json.loads(credentials_path(stack.config).read_text())["users"][index]
    async with http.post(stack.base + "/auth/token",
                         json={"login": known["login"], "password": known["password"]}) as resp:
        assert resp.status == 200, await resp.text()
        return f"Bearer {(await resp.json())['access_token']}"
