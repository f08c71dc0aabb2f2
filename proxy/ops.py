"""Operations views on the API port, without a token: health, readiness (from background checks), metrics."""
from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.appkeys import GATEWAY, METRICS, READINESS, STORE, WORKER_METRICS
from proxy.readiness import Checks

READY_FIRST_WAIT = 2.0  # seconds a probe waits for the first round after start-up
CHECK_TIMEOUT = 1.0     # seconds each upstream has to answer a round's health check
UPSTREAM = "upstream:"  # the checks' names of the upstreams


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "generation": request.app[GATEWAY].generation.number})


async def ready(request: web.Request) -> web.Response:
    """200 while the process can serve: started (its first round of checks done) and not draining.

    The body reports Redis and each upstream from the last background round (a probe costs no Redis call
    and no upstream request); their state never changes the status: with Redis down every request bypasses
    the cache, with an upstream down only its routes fail, and every gateway shares both.
    """
    readiness = request.app[READINESS]
    if readiness.checks is None:
        await readiness.wait_first(READY_FIRST_WAIT)
    checks = readiness.checks
    if readiness.draining:
        status = "draining"
    else:
        status = "ok" if checks is not None else "starting"
    body: dict[str, object] = {"status": status}
    if checks is not None:
        body["redis"] = checks.get("redis", "off")  # not checked while the cache is off
        body["upstreams"] = {name[len(UPSTREAM):]: state for name, state in checks.items()
                             if name.startswith(UPSTREAM)}
        body.update((name, state) for name, state in checks.items()
                    if name != "redis" and not name.startswith(UPSTREAM))
    return web.json_response(body, status=200 if readiness.ready else 503)


async def check_dependencies(app: web.Application) -> Checks:
    """One round: Redis answers PING (when the cache is on) and every upstream answers HTTP below 500."""
    gateway = app[GATEWAY]
    checks: Checks = {}
    if gateway.cache_enabled:
        checks["redis"] = "ok" if await app[STORE].ping() else "unavailable"
    upstream = gateway.generation.upstream
    names = upstream.names()
    found = await asyncio.gather(*(upstream.health(name, timeout=CHECK_TIMEOUT) for name in names))
    checks.update((f"{UPSTREAM}{name}", state) for name, state in zip(names, found))
    return checks


async def metrics_view(request: web.Request) -> web.Response:
    workers = request.app.get(WORKER_METRICS)
    body = workers.render() if workers is not None else request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
