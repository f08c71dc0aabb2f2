"""One path for every request: match route -> authenticate -> strategy.handle(ctx) -> response."""
from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Mapping

from aiohttp import web
from multidict import CIMultiDict

from proxy.accesslog import AccessLog
from proxy.auth import Authenticator, single_authorization
from proxy.canonical import canonical_target
from proxy.config import Config
from proxy.errors import CachegateError, PayloadTooLarge
from proxy.metrics import Metrics
from proxy.revocations import Revocations
from proxy.router import Router, render_invalidations
from proxy.forwarding import OutgoingHeaders
from proxy.upstream import Upstream, upstream_time
from strategies.base import Context, Reply, Request, Strategy

log = logging.getLogger("cachegate.proxy")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JSON = "application/json"
SAFE = frozenset({"GET", "HEAD"})
# Request ids made here: a random per-process prefix and a counter, unique without a uuid per request.
_ID_PREFIX = os.urandom(6).hex()
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Generation:
    """Everything a request reads from the config; a reload swaps the whole object in one assignment, so an
    in-flight request finishes with the generation it started with."""
    number: int
    config: Config
    router: Router
    strategies: Mapping[str, Strategy]
    upstream: Upstream


class Gateway:
    def __init__(self, generation: Generation, auth: Authenticator, metrics: Metrics,
                 access_log: AccessLog, *, revocations: Revocations | None = None) -> None:
        self.generation = generation
        self.auth = auth
        self.revocations = revocations
        self.metrics = metrics
        self.cache_enabled = generation.config.cache.enabled
        self.log = access_log
        self.access_log = generation.config.proxy.access_log
        metrics.cache_enabled.set(1 if self.cache_enabled else 0)
        self._counters: dict[tuple[str, str, str, int], object] = {}  # labels() is slow; children are few

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        spent: list[float | None] | None = [None] if self.access_log else None
        if spent is not None:
            upstream_time.set(spent)  # a fresh holder: requests on one connection share a task context
        gen = self.generation
        request_id = request.headers.get("X-Request-Id")
        if request_id is None or not _REQUEST_ID.match(request_id):
            request_id = f"{_ID_PREFIX}-{next(_ids):x}"
        route_name, strategy_name = "-", "-"
        try:
            presented = single_authorization(request.headers)  # before anything else reads it
            # One spelling of the target for the router, the key and the upstream request (refreshes too):
            # aiohttp's decoded request.path and its raw target disagree (%2F), so both come from this.
            path, wire_path, qs = canonical_target(request.raw_path)
            match = gen.router.resolve(request.method, path)
            route = match.route
            cfg = route.config
            route_name, strategy_name = route.name, cfg.strategy
            caller = None
            authorization = None
            if cfg.auth == "required":
                # Before any cache lookup: a cached response is never a way around authentication.
                identity = await self.auth.authenticate(presented)
                caller, authorization = identity.sub, identity.header
            else:
                authorization = presented
            body = await _read_body(request)
            bypass = None if self.cache_enabled else "CACHE-OFF"
            if bypass is None and route.key is not None and qs and request.method in SAFE and not route.key_covers(qs):
                bypass = "QUERY-NOT-IN-KEY"
            headers = OutgoingHeaders(request.headers, authorization=authorization, client=request,
                                      request_id=request_id)
            ctx = Context(
                request=Request(request.method, wire_path, qs, headers, body),
                route=cfg, route_name=route_name, caller=caller,
                key=route.key(match.params, qs, caller) if route.key else None,
                invalidates=render_invalidations(route, match.params, qs, caller) if route.invalidates else (),
                bypass=bypass)
            reply = await gen.strategies[cfg.strategy].handle(ctx)
            if request.method not in SAFE and self.revocations is not None:
                # Recorded before the answer leaves: the caller's next request finds the token refused.
                reply.headers = await self.revocations.absorb(reply.headers)
        except CachegateError as exc:
            reply = error_reply(exc)
        except Exception:  # a bug must still answer in JSON, and never show a traceback to the client
            log.exception("unexpected error on %s %s (request %s)", request.method, request.path, request_id)
            reply = Reply(500, [("Content-Type", JSON)],
                          b'{"error": {"code": "internal_error", "message": "internal error"}}',
                          "cachegate; fwd=bypass; detail=ERROR")
        headers = CIMultiDict(reply.headers)
        headers["Cache-Status"] = reply.cache_status
        headers["X-Request-Id"] = request_id
        labels = (route_name, strategy_name, request.method, reply.status)
        counter = self._counters.get(labels)
        if counter is None:
            counter = self._counters[labels] = self.metrics.requests.labels(*labels[:3], str(reply.status))
        counter.inc()
        if spent is not None:
            self.log.write(request_id, request.method, request.raw_path, reply.status, route_name,
                           reply.cache_status, spent[0], time.perf_counter() - started)
        return web.Response(status=reply.status, body=reply.body if request.method != "HEAD" else None,
                            headers=headers)


async def _read_body(request: web.Request) -> bytes:
    if not request.body_exists:
        return b""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body over {request.client_max_size} bytes") from None


def error_reply(exc: CachegateError) -> Reply:
    body = json.dumps({"error": {"code": exc.code, "message": exc.message}}).encode()
    headers = [("Content-Type", JSON), *exc.headers.items()]
    return Reply(exc.status, headers, body, f"cachegate; fwd=bypass; detail={exc.code.upper().replace('_', '-')}")
