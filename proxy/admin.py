"""The admin listener: reload, cache on/off, purge. Loopback only unless an admin token guards it."""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Protocol

from aiohttp import web

from proxy.config import Config
from proxy.errors import CachegateError, CacheUnavailable, ConfigError, RequestError

log = logging.getLogger("cachegate.admin")


class Control(Protocol):
    """What the admin calls act on: one process (workers=1) or a master relaying to its workers."""
    async def reload(self) -> int: ...
    async def set_cache(self, enabled: bool) -> None: ...
    async def purge_key(self, key: str) -> None: ...
    async def purge_tag(self, tag: str) -> None: ...
    def state(self) -> dict: ...


def check_admin_binding(config: Config) -> None:
    if config.proxy.admin_token:
        return
    try:
        loopback = ipaddress.ip_address(config.proxy.admin_host).is_loopback
    except ValueError:
        loopback = config.proxy.admin_host == "localhost"
    if not loopback:
        raise ConfigError(f"proxy.admin.host: {config.proxy.admin_host} is not a loopback address; "
                          "set proxy.admin.token (or CACHEGATE_ADMIN_TOKEN) to expose the admin listener")


def create_admin_app(config: Config, control: Control) -> web.Application:
    check_admin_binding(config)
    token = config.proxy.admin_token
    app = web.Application(middlewares=[_errors(token)], client_max_size=64 * 1024)

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


def _errors(token: str | None):
    @web.middleware
    async def middleware(request: web.Request, handler):
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error(401, "unauthorized", "admin token required")
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


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
