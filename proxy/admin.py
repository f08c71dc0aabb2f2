"""The admin listener: reload, cache on/off, purge, explain, state, a status page; behind the admin token.

Every call carries `Authorization: Bearer <admin token>`, compared in constant time; without it the answer is
401, unknown paths included. A browser cannot send that header, so the status page also takes a cookie: the
login form there takes the token once (POST, never in a URL, so never in a history or a log) and answers with
an HttpOnly (no script reads it), SameSite=Strict (no other site makes the browser send it) cookie scoped to
the page's path. The cookie is not the token but a keyed hash of it and its expiry, and it opens only the
read-only page: every call that changes something still needs the Bearer header, so a cookie can never be
used to make a browser change anything.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Protocol

from aiohttp import web

from cachegate.config import Config
from proxy.errors import CachegateError, CacheUnavailable, ConfigError, RequestError
from proxy.statuspage import login_page, status_page

log = logging.getLogger("cachegate.admin")

STATUS, LOGIN, LOGOUT = "/-/admin/status", "/-/admin/status/login", "/-/admin/status/logout"
COOKIE = "cachegate_status"
COOKIE_LIFETIME = 12 * 3600  # seconds a login lasts
PURGE_HELP = ('expected one of {"key": "user:42"}, {"url": "/users/42"} (with "caller" for a key that names '
              'its caller), {"tag": "user-lists"} or {"prefix": "user:"}')


class Control(Protocol):
    """What the admin calls act on: one process (workers=1) or a master relaying to its workers
    (proxy/control.py)."""
    async def reload(self) -> int: ...
    async def set_cache(self, enabled: bool) -> None: ...
    async def purge_key(self, key: str) -> int: ...
    async def purge_url(self, target: str, caller: str | None) -> tuple[str, int]: ...
    async def purge_tag(self, tag: str) -> int: ...
    async def purge_prefix(self, prefix: str) -> int: ...
    async def explain(self, method: str, target: str, caller: str | None) -> dict: ...
    def state(self) -> dict: ...
    def figures(self) -> dict: ...


def create_admin_app(config: Config, control: Control) -> web.Application:
    """The token is read now (ConfigError when there is none): a change of the file needs a restart."""
    token = config.proxy.admin_token()
    cookies = StatusCookies(token)
    app = web.Application(middlewares=[_guard(token, cookies)], client_max_size=64 * 1024)

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
        named = [k for k in ("key", "url", "tag", "prefix") if k in body]
        kind = named[0] if len(named) == 1 else None
        value, caller = body.get(kind) if kind else None, body.get("caller")
        allowed = {kind, "caller"} if kind == "url" else {kind}
        if (not isinstance(value, str) or not value or set(body) - allowed
                or not (caller is None or isinstance(caller, str) and caller)):
            raise RequestError(PURGE_HELP)
        if kind == "url":
            key, removed = await control.purge_url(value, caller)
            return web.json_response({"purged": body, "key": key, "removed": removed})
        if kind == "key" and any(c in value for c in "*?["):
            # Rendered keys never hold these (key templates escape them): this is a pattern, not a key.
            raise RequestError(f'a key never contains * ? or [: to purge every key that starts with "'
                               f'{value.split("*")[0]}", send {{"prefix": "{value.split("*")[0]}"}}')
        purge_by = {"key": control.purge_key, "tag": control.purge_tag, "prefix": control.purge_prefix}[kind]
        return web.json_response({"purged": body, "removed": await purge_by(value)})

    async def explain(request: web.Request) -> web.Response:
        query = request.query
        method, target, caller = query.get("method", "GET"), query.get("target"), query.get("caller") or None
        if not target or set(query) - {"method", "target", "caller"} or not method.isalpha():
            raise RequestError("expected ?target=/users/42 (the request target or URL), optional "
                               "&method=GET and &caller=<user id> (for a key that names its caller)")
        return web.json_response(await control.explain(method, target, caller))

    async def status(request: web.Request) -> web.Response:
        return web.Response(text=status_page(control.figures(), logout=LOGOUT), content_type="text/html",
                            headers=_NO_STORE)

    async def login_form(request: web.Request) -> web.Response:
        return web.Response(text=login_page(LOGIN), content_type="text/html", headers=_NO_STORE)

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        presented = form.get("token")
        if not isinstance(presented, str) or not hmac.compare_digest(_digest(presented), _digest(token)):
            return web.Response(text=login_page(LOGIN, "That is not the admin token."), status=401,
                                content_type="text/html", headers=_NO_STORE)
        response = web.Response(status=303, headers={"Location": STATUS, **_NO_STORE})
        response.set_cookie(COOKIE, cookies.issue(), max_age=COOKIE_LIFETIME, path=STATUS, httponly=True,
                            samesite="Strict")
        return response

    async def logout(request: web.Request) -> web.Response:
        response = web.Response(status=303, headers={"Location": LOGIN, **_NO_STORE})
        response.del_cookie(COOKIE, path=STATUS)
        return response

    app.router.add_get("/-/admin/state", state)
    app.router.add_post("/-/admin/reload", reload)
    app.router.add_post("/-/admin/cache", cache)
    app.router.add_post("/-/admin/purge", purge)
    app.router.add_get("/-/admin/explain", explain)
    app.router.add_get(STATUS, status)
    app.router.add_get(LOGIN, login_form)
    app.router.add_post(LOGIN, login)
    app.router.add_post(LOGOUT, logout)
    return app


_NO_STORE = {"Cache-Control": "no-store"}


class StatusCookies:
    """`<expiry>.<HMAC-SHA256 of it under a key derived from the admin token>`: checked without any state,
    void when the token changes (a restart), and no way back to the token."""

    def __init__(self, token: str) -> None:
        self._key = hmac.new(token.encode("utf-8", "surrogateescape"), b"cachegate status page",
                             hashlib.sha256).digest()

    def issue(self, now: float | None = None) -> str:
        expiry = int((now if now is not None else time.time()) + COOKIE_LIFETIME)
        return f"{expiry}.{self._sign(expiry)}"

    def valid(self, cookie: str | None, now: float | None = None) -> bool:
        expiry, _, signature = (cookie or "").partition(".")
        if not expiry.isdigit():
            return False
        if not hmac.compare_digest(signature.encode(), self._sign(int(expiry)).encode()):
            return False
        return int(expiry) > (now if now is not None else time.time())

    def _sign(self, expiry: int) -> str:
        return hmac.new(self._key, str(expiry).encode(), hashlib.sha256).hexdigest()


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


def _guard(token: str, cookies: StatusCookies):
    """The token check on every call (the status page's login form and cookie aside), then errors as JSON."""
    # Digests of equal length, compared in constant time: neither the token nor its length leaks by timing.
    expected = _digest(f"Bearer {token}")

    @web.middleware
    async def middleware(request: web.Request, handler):
        bearer = hmac.compare_digest(_digest(request.headers.get("Authorization", "")), expected)
        # Before routing: an unknown path answers 401 too, so the listener tells nothing without the token.
        if not bearer and not _page_allowed(request, cookies):
            if request.path == STATUS and request.method == "GET":  # a browser: to the form
                return web.Response(status=303, headers={"Location": LOGIN, **_NO_STORE})
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


def _page_allowed(request: web.Request, cookies: StatusCookies) -> bool:
    """Without the Bearer header: the login form, and the status page (and its logout) with a valid cookie."""
    if request.path == LOGIN and request.method in ("GET", "POST"):
        return True
    return request.path in (STATUS, LOGOUT) and cookies.valid(request.cookies.get(COOKIE))


def _error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)
