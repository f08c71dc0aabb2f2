"""Basic credentials exchanged at a token endpoint on a real socket, through the real upstream client: what
each of its answers becomes."""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

import pytest
from aiohttp import web

from cachegate.errors import AuthError
from proxy.auth import BasicExchange
from proxy.errors import UpstreamError
from proxy.metrics import Metrics
from proxy.upstream import Upstream, make_session


@pytest.fixture
async def endpoint(aiohttp_server: Any) -> AsyncIterator[tuple[BasicExchange, dict]]:
    """A token endpoint that answers whatever `answer` holds: (status, JSON body)."""
    answer: dict = {"status": 200, "body": {"access_token": "tok"}, "seen": []}

    async def token(request: web.Request) -> web.Response:
        answer["seen"].append(request.headers.get("Authorization"))
        return web.Response(status=answer["status"], text=json.dumps(answer["body"]),
                            content_type="application/json")

    app = web.Application()
    app.router.add_post("/auth/token", token)
    server = await aiohttp_server(app)
    session = make_session()
    upstream = Upstream(session, {"users": str(server.make_url("")).rstrip("/")}, Metrics(), max_body=1 << 16,
                        connect_timeout=1.0, timeout=2.0)
    yield BasicExchange(upstream, "users", "/auth/token"), answer
    await session.close()


async def test_good_credentials_give_the_token(endpoint: tuple[BasicExchange, dict]) -> None:
    exchange, answer = endpoint
    assert await exchange("dXNlcjpwYXNz") == "tok"
    assert answer["seen"] == ["Basic dXNlcjpwYXNz"]


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_a_refusal_is_an_auth_error_that_asks_for_basic(endpoint: tuple[BasicExchange, dict],
                                                              status: int) -> None:
    exchange, answer = endpoint
    answer["status"], answer["body"] = status, {"error": {"code": "x", "message": "no"}}
    with pytest.raises(AuthError) as refused:
        await exchange("dXNlcjpiYWQ=")
    assert not isinstance(refused.value, UpstreamError)
    assert refused.value.headers == {"WWW-Authenticate": 'Basic realm="cachegate"'}


@pytest.mark.parametrize("status, body", [(404, {}), (500, {}), (200, {}), (200, {"access_token": 7})])
async def test_anything_else_is_the_upstreams_failure(endpoint: tuple[BasicExchange, dict], status: int,
                                                      body: dict) -> None:
    exchange, answer = endpoint
    answer["status"], answer["body"] = status, body
    with pytest.raises(UpstreamError):
        await exchange("dXNlcjpwYXNz")
