"""The admin listener: reload, cache on/off, purge, state; every call carries the admin token."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Protocol

from aiohttp import web

from cachegate.config import Config
from proxy.errors import CachegateError, CacheUnavailable, ConfigError, RequestError

log = logging.getLogger("cachegate.admin")


class Control(Protocol):
    """What the admin calls act on: one process (workers=1) or a master relaying to its workers
    (proxy/control.py)."""
    async def reload(self) -> int: ...
    async def set_cache(self, enabled: bool) -> None: ...
    async def purge_key(self, key: str) -> None: ...
    async def purge_tag(self, tag: str) -> None: ...
    def state(self) -> dict: ...


def create_admin_app(config: Config, control: Control) -> web.Application:
    """The token is read now (ConfigError when there is none): a change of the file needs a restart."""
    app = web.Application(middlewares=[_guard(config.proxy.admin_token())], client_max_size=64 * 1024)

    async def state(request: web.Request) -> web.Response:
        return web.json_response(control.state())

    async def reload(request: web.Request) -> web.Response:
        generation = await control.reload()
        return web.json_response({"reloaded": True, "generation": generation})

    async def cache(request: web.Request) -> web.Response:
        body = await _json(request)
        enabled = body.get("enabled")
        if not isinstance(enabled, bool) or set(body) != {"enabled"}:
            raise RequestError('expected {"enabled": true} or {"enabled": false}')
        await control.set_cache(enabled)
        return web.json_response({"cache_enabled": enabled})

    async def purge(request: web.Request) -> web.Response:
        body = await _json(request)
        if set(body) == {"key"} and isinstance(body["key"], str) and body["key"]:
            await control.purge_key(body["key"])
        elif set(body) == {"tag"} and isinstance(body["tag"], str) and body["tag"]:
            await control.purge_tag(body["tag"])
        else:
            raise RequestError('expected {"key": "user:42"} or {"tag": "user-lists"}')
        return web.json_response({"purged": body})

    app.router.add_get("/-/admin/state", state)
    app.router.add_post("/-/admin/reload", reload)
    app.router.add_post("/-/admin/cache", cache)
    app.router.add_post("/-/admin/purge", purge)
    return app


async def _json(request: web.Request) -> dict:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise RequestError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError("expected a JSON object")
    return body


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def _guard(token: str):
    """The token check on every call, then errors as JSON answers."""
    # Digests of equal length, compared in constant time: neither the token nor its length leaks by timing.
    expected = _digest(f"Bearer {token}")

    @web.middleware
    async def middleware(request: web.Request, handler):
        # Before routing: an unknown path answers 401 too, so the listener tells nothing without the token.
        if not hmac.compare_digest(_digest(request.headers.get("Authorization", "")), expected):
            return _error(401, "unauthorized", "admin token missing or wrong (Authorization: Bearer <token>)",
                          headers={"WWW-Authenticate": 'Bearer realm="cachegate-admin"'})
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        except ConfigError as exc:
            return _error(422, exc.code, f"config refused, the previous one keeps serving: {exc.message}")
        except CacheUnavailable as exc:
            return _error(503, exc.code, exc.message)
        except CachegateError as exc:
            return _error(exc.status, exc.code, exc.message)
    return middleware


def _error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)
