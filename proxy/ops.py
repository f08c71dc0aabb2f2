"""Operations views on the API port, without a token: health, readiness (from background checks), metrics."""
from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.appkeys import GATEWAY, METRICS, READINESS, STORE
from proxy.readiness import Checks

READY_FIRST_WAIT = 2.0  # seconds a probe waits for the first round after start-up
CHECK_TIMEOUT = 1.0     # seconds each upstream has to answer a round's health check


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "generation": request.app[GATEWAY].generation.number})


async def ready(request: web.Request) -> web.Response:
    """Ready when the last background round found Redis (unless the cache is off) and every upstream up.

    A probe reads that round's result: it costs no Redis call and no upstream request, and the body says
    only ready or not (what failed goes to the log and to the admin state).
    """
    readiness = request.app[READINESS]
    if readiness.checks is None:
        await readiness.wait_first(READY_FIRST_WAIT)
    ok = readiness.ready
    return web.json_response({"status": "ok" if ok else "not ready"}, status=200 if ok else 503)


async def check_dependencies(app: web.Application) -> Checks:
    """One round: Redis answers PING (when the cache is on) and every upstream answers HTTP below 500."""
    gateway = app[GATEWAY]
    checks: Checks = {}
    if gateway.cache_enabled:
        checks["redis"] = "ok" if await app[STORE].ping() else "unavailable"
    upstream = gateway.generation.upstream
    names = upstream.names()
    found = await asyncio.gather(*(upstream.health(name, timeout=CHECK_TIMEOUT) for name in names))
    checks.update((f"upstream:{name}", state) for name, state in zip(names, found))
    return checks


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
