"""The JSON error middleware on its own: unexpected exceptions become a logged 500 body, never a traceback."""
from __future__ import annotations

import logging

from aiohttp import web

from backends.common.app import make_app
from backends.common.errors import ApiError
from tests.support.services import error_of


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals")


async def refuse(request: web.Request) -> web.Response:
    raise ApiError(409, "conflict", "already there", headers={"X-Why": "test"})


async def test_unexpected_errors_are_logged_500_json(aiohttp_client, make_config, caplog):
    routes = [web.get("/boom", boom), web.get("/refuse", refuse)]
    app = make_app(make_config(), "users", routes, auth=False)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR, logger="backends.errors"):
        resp = await client.get("/boom")
        assert await error_of(resp, 500) == "internal_error"
        assert "secret internals" not in await resp.text() and "Traceback" not in await resp.text()
    assert any("GET /boom" in r.getMessage() and r.exc_info for r in caplog.records)
    resp = await client.get("/refuse")
    assert await error_of(resp, 409) == "conflict" and resp.headers["X-Why"] == "test"


async def test_auth_middleware_guards_all_but_public_routes(aiohttp_client, make_config):
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = make_app(make_config(), "users", [web.get("/open", ok), web.get("/closed", ok)],
                   public=[("GET", "/open")])
    client = await aiohttp_client(app)
    assert (await client.get("/open")).status == 200
    assert await error_of(await client.get("/closed"), 401) == "unauthorized"
    assert await error_of(await client.get("/missing"), 404) == "not_found"
