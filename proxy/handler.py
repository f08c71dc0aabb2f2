"""One path for every request: match route -> authenticate -> strategy.handle(ctx) -> response."""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import time

from aiohttp import web

from proxy.accesslog import AccessLog
from proxy.auth import Authenticator, single_authorization
from proxy.canonical import canonical_target
from proxy.errors import CachegateError, PayloadTooLarge, RequestTimeout
from proxy.forwarding import OutgoingHeaders
from proxy.generation import Generation
from proxy.metrics import Metrics
from proxy.revocations import Revocations
from proxy.router import cache_bypass, render_invalidations
from proxy.upstream import Request
from strategies.base import Context, Reply
from strategies.httpcache import cache_status

log = logging.getLogger("cachegate.proxy")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JSON = "application/json"
SAFE = frozenset({"GET", "HEAD"})
# Request ids made here: a random per-process prefix and a counter, unique without a uuid per request.
_ID_PREFIX = os.urandom(6).hex()
_ids = itertools.count(1)
_INTERNAL = b'{"error": {"code": "internal_error", "message": "internal error"}}'
_ERROR_STATUS = cache_status(fwd="bypass", detail="ERROR")


class Gateway:
    """The request path of one process. `generation` is swapped whole by a reload; `cache_enabled` is the
    run-time switch (admin calls, reloads); the token rules, the revocations and the logs are the process's.
    """

    def __init__(self, generation: Generation, auth: Authenticator, metrics: Metrics,
                 access_log: AccessLog, *, revocations: Revocations | None = None) -> None:
        self.generation = generation
        self.auth = auth
        self.revocations = revocations
        self.metrics = metrics
        self.access_log = access_log
        self.cache_enabled = generation.config.cache.enabled
        # Set by proxy/lagwatch.py: the invalidator is behind its bound, so the routes it covers bypass.
        self.invalidator_behind = False
        metrics.cache_enabled.set(1 if self.cache_enabled else 0)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        gen = self.generation
        request_id = request.headers.get("X-Request-Id")
        if request_id is None or not _REQUEST_ID.match(request_id):
            request_id = f"{_ID_PREFIX}-{next(_ids):x}"
        route_name, strategy_name = "-", "-"
        unread = False  # a body left unread: the connection cannot carry another request
        ctx: Context | None = None
        refused = "internal_error"  # the error code of a request no strategy answered
        try:
            presented = single_authorization(request.headers)  # before anything else reads it
            # One spelling of the target for the router, the key and the upstream request (refreshes too):
            # aiohttp's decoded request.path and its raw target disagree (%2F), so both come from this.
            path, wire_path, qs = canonical_target(request.raw_path)
            match = gen.router.resolve(request.method, path)
            route = match.route
            cfg = route.config
            route_name, strategy_name = cfg.name, cfg.strategy
            caller = None
            if cfg.auth == "required":
                # Before any cache lookup: a cached response is never a way around authentication.
                identity = await self.auth.authenticate(presented, gen.exchange)
                caller, authorization = identity.sub, identity.header
            else:
                authorization = presented
            body = await _read_body(request, gen.config.proxy.body_timeout)
            bypass = cache_bypass(route, request.method, qs, self.cache_enabled, self.invalidator_behind)
            headers = OutgoingHeaders(request.headers, authorization=authorization, client=request,
                                      request_id=request_id)
            ctx = Context(
                request=Request(request.method, wire_path, qs, headers, body),
                route=cfg, route_name=route_name, caller=caller,
                key=route.key(match.params, qs, caller) if route.key else None,
                invalidates=(render_invalidations(route, match.params, qs, caller) if route.invalidates
                             else ()),
                bypass=bypass)
            reply = await gen.strategies[cfg.strategy].handle(ctx)
        except CachegateError as exc:
            reply, refused = error_reply(exc), exc.code
            unread = isinstance(exc, (RequestTimeout, PayloadTooLarge))
        except Exception:  # a bug must still answer in JSON, and never show a traceback to the client
            log.exception("unexpected error on %s %s (request %s)", request.method, request.path, request_id)
            reply = Reply(500, [("Content-Type", JSON)], _INTERNAL, _ERROR_STATUS)
        # The one copy of the headers: the reply's (shared with other waiters of one fetch) into the answer's.
        response = web.Response(status=reply.status, body=reply.body if request.method != "HEAD" else None,
                                headers=reply.headers)
        if unread:
            response.force_close()
        out = response.headers
        out["Cache-Status"] = reply.cache_status
        out["X-Request-Id"] = request_id
        if request.method not in SAFE and self.revocations is not None:
            # Recorded before the answer leaves: the caller's next request finds the token refused.
            await self.revocations.absorb(out)
        # Every request once in each counter: the strategy's template counted what the cache did, unless no
        # strategy got to say it (refused before the cache, or a bug).
        outcome = ctx.outcome if ctx is not None else None
        if outcome is None:
            self.metrics.count_outcome(route_name, "error", refused)
        spent = time.perf_counter() - started
        self.metrics.answered(route_name, strategy_name, request.method, reply.status,
                              "error" if outcome is None else outcome.outcome, spent)
        if gen.log_access:
            self.access_log.write(request_id, request.method, request.raw_path, reply.status, route_name,
                                  reply.cache_status, reply.elapsed, spent)
        return response


async def _read_body(request: web.Request, timeout: float) -> bytes:
    """The whole body within `timeout` (else 408); one declared over the limit is refused unread (413)."""
    if not request.body_exists:
        return b""
    declared = request.content_length
    if declared is not None and declared > request.client_max_size:
        raise PayloadTooLarge(f"request body of {declared} bytes over {request.client_max_size} bytes")
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body over {request.client_max_size} bytes") from None
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout:g}s") from None


def error_reply(exc: CachegateError) -> Reply:
    body = json.dumps({"error": {"code": exc.code, "message": exc.message}}).encode()
    headers = [("Content-Type", JSON), *exc.headers.items()]
    detail = exc.code.upper().replace("_", "-")
    return Reply(exc.status, headers, body, cache_status(fwd="bypass", detail=detail))
