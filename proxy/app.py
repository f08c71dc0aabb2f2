"""create_app(config): the gateway's aiohttp application, owning every client it uses."""
from __future__ import annotations

import logging
from typing import AsyncIterator

import aiohttp
import asyncio

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from proxy.accesslog import AccessLog
from proxy.auth import Authenticator
from proxy.config import Config, load_config
from proxy.errors import CacheUnavailable, ConfigError
from proxy.handler import Gateway, Generation
from proxy.lookups import PipelinedLookups
from proxy.metrics import Metrics
from proxy.readiness import Checks, Readiness
from proxy.revocations import Revocations
from proxy.router import Router
from proxy.store import CacheStore
from proxy.upstream import Upstream, make_session
from strategies.base import Strategy, get_strategy

log = logging.getLogger("cachegate.proxy")

CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
REDIS = web.AppKey("redis", aioredis.Redis)
SESSION = web.AppKey("session", aiohttp.ClientSession)
STORE = web.AppKey("store", CacheStore)
GATEWAY = web.AppKey("gateway", Gateway)
READINESS = web.AppKey("readiness", Readiness)
DRAINING = web.AppKey("draining", set)  # retired generations whose fetches are still finishing
REVOCATIONS = web.AppKey("revocations", Revocations)


def create_app(config: Config, *, metrics: Metrics | None = None,
               access_log: AccessLog | None = None) -> web.Application:
    app = web.Application(client_max_size=config.proxy.max_body)
    app[CONFIG] = config
    app[METRICS] = metrics or Metrics()
    app[ACCESS_LOG] = access_log or AccessLog()
    app[DRAINING] = set()
    app.cleanup_ctx.append(_clients)
    app.router.add_get("/-/health", health)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/-/metrics", metrics_view)
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


async def _clients(app: web.Application) -> AsyncIterator[None]:
    config, metrics = app[CONFIG], app[METRICS]
    redis = make_redis(config)
    session = make_session(connect_timeout=config.proxy.upstream_connect_timeout,
                           total_timeout=config.proxy.upstream_timeout)
    app[REDIS], app[SESSION] = redis, session
    lookups = make_lookups(config)
    store = CacheStore(redis, prefix=config.cache.prefix, timeout=config.redis.timeout,
                       breaker_failures=config.redis.breaker_failures, breaker_reset=config.redis.breaker_reset,
                       metrics=metrics, lookups=lookups)
    app[STORE] = store
    upstream = Upstream(session, config.upstreams, metrics, max_body=config.proxy.max_body)
    exchange_to = config.auth.exchange_upstream, config.auth.exchange_path

    async def exchange(credentials: str) -> str:
        return await app[GATEWAY].generation.upstream.exchange_basic(*exchange_to, credentials)

    # A revocation is remembered until every token it voids has expired, leeway included (twice: a token
    # issued while its user was being changed may be stamped a little after the change).
    revocations_redis = make_redis(config)
    revocations = Revocations(revocations_redis, prefix=config.cache.prefix, timeout=config.redis.timeout,
                              lifetime=config.auth.token_ttl + 2 * config.auth.leeway)
    app[REVOCATIONS] = revocations
    auth = Authenticator(config.auth, exchange, revoked=revocations.below)
    generation = build_generation(1, config, store, upstream, metrics)
    app[GATEWAY] = Gateway(generation, auth, metrics, app[ACCESS_LOG], revocations=revocations)
    metrics.config_generation.set(1)
    readiness = Readiness(lambda: check_dependencies(app),
                          interval=lambda: app[GATEWAY].generation.config.proxy.readiness_interval)
    app[READINESS] = readiness
    loop = asyncio.get_running_loop()
    flusher = loop.create_task(app[ACCESS_LOG].run())
    checker = loop.create_task(readiness.run())
    follower = loop.create_task(revocations.run())
    try:
        await _in_step(revocations, config)
        yield
    finally:
        checker.cancel()
        await revocations.stop(follower)
        flusher.cancel()
        for task in list(app[DRAINING]):  # at shutdown a retired generation's fetches are cancelled too
            task.cancel()
        # The flusher writes its last lines.
        await asyncio.gather(flusher, checker, *app[DRAINING], return_exceptions=True)
        await close_strategies(app[GATEWAY].generation)
        await session.close()
        if lookups is not None:
            await lookups.aclose()
        await redis.aclose()
        await revocations_redis.aclose()


async def _in_step(revocations: Revocations, config: Config) -> None:
    """Serve once the revoked tokens are read, when Redis lets that be quick; otherwise they follow later."""
    try:
        await asyncio.wait_for(revocations.connected.wait(), 4 * config.redis.timeout)
    except TimeoutError:
        log.warning("serving before the revoked tokens could be read from Redis; they follow when it answers")


def make_lookups(config: Config) -> PipelinedLookups | None:
    if not config.redis.url.startswith("redis://"):
        return None  # TLS and unix sockets: redis-py's client does the lookups too
    return PipelinedLookups(config.redis.url, connect_timeout=config.redis.timeout,
                            username=config.redis.username, password=config.redis.password())


def make_redis(config: Config) -> aioredis.Redis:
    # No retries: a slow Redis must cost one short timeout, then a bypass, never a retry loop.
    # Bytes out (no decode_responses): entries carry raw bodies.
    # A blocking pool: past 64 connections a call waits (within the timeout) for one to come free, where
    # the default pool raises at once and turned a burst of fills into bypasses.
    # The credentials come from redis.username and redis.password_file: config refuses them in the URL.
    pool = aioredis.BlockingConnectionPool.from_url(
        config.redis.url, max_connections=64, timeout=config.redis.timeout,
        socket_timeout=config.redis.timeout, socket_connect_timeout=config.redis.timeout,
        username=config.redis.username, password=config.redis.password())
    return aioredis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))


async def drain_strategies(generation: Generation) -> None:
    for strategy in generation.strategies.values():
        await strategy.drain()


async def close_strategies(generation: Generation) -> None:
    """Let background refreshes of a generation finish (or stop) before its clients go away."""
    for strategy in generation.strategies.values():
        await strategy.close()


def build_generation(number: int, config: Config, store: CacheStore, upstream: Upstream,
                     metrics: Metrics) -> Generation:
    strategies: dict[str, Strategy] = {}
    for route in config.routes:
        if route.strategy not in strategies:
            strategies[route.strategy] = get_strategy(route.strategy)(
                store=store, upstream=upstream, metrics=metrics, cache=config.cache)
    return Generation(number, config, Router(config.routes), strategies, upstream)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    return await request.app[GATEWAY].handle(request)


async def reload(app: web.Application, source=None) -> Generation:
    """Load the config again and swap it in whole; an invalid file raises ConfigError and changes nothing."""
    gateway = app[GATEWAY]
    current = gateway.generation.config
    config = load_config(source if source is not None else current.path)
    check_reloadable(current, config)
    upstream = gateway.generation.upstream.with_bases(config.upstreams)
    generation = build_generation(gateway.generation.number + 1, config, app[STORE], upstream, app[METRICS])
    previous, gateway.generation = gateway.generation, generation
    gateway.access_log = config.proxy.access_log
    # The old generation's in-flight requests finish with it, and so do the fetches they wait on:
    # cancelling those would fail requests that were accepted before the reload.
    draining = app[DRAINING]
    task = asyncio.get_running_loop().create_task(drain_strategies(previous))
    draining.add(task)
    task.add_done_callback(draining.discard)
    await set_cache_enabled(app, config.cache.enabled)
    app[METRICS].config_generation.set(generation.number)
    log.info("config generation %d loaded: %d routes, cache %s", generation.number, len(config.routes),
             "on" if gateway.cache_enabled else "off")
    return generation


def check_reloadable(current: Config, config: Config) -> None:
    """ConfigError when `config` changes what only a restart applies: a reload must not seem to rotate a
    credential (the old admin token would keep working)."""
    before, after = current.proxy, config.proxy
    for what, old, new in (("proxy.port", before.port, after.port),
                           ("proxy.admin.token_file", before.admin_token_file, after.admin_token_file),
                           ("redis.url", current.redis.url, config.redis.url),
                           ("redis.username", current.redis.username, config.redis.username),
                           ("redis.password_file", current.redis.password_file, config.redis.password_file),
                           ("auth.public_key", current.auth.public_key, config.auth.public_key)):
        if old != new:
            raise ConfigError(f"{what}: changed from {old} to {new}; that needs a restart, not a reload")


async def set_cache_enabled(app: web.Application, enabled: bool) -> None:
    """Turning the cache back on starts a new key epoch: writes made while it was off never touched Redis."""
    gateway = app[GATEWAY]
    if enabled and not gateway.cache_enabled:
        try:
            await app[STORE].new_epoch()
        except CacheUnavailable as exc:
            raise CacheUnavailable(f"cache stays off: Redis is unavailable ({exc.message})") from None
    gateway.cache_enabled = enabled
    app[METRICS].cache_enabled.set(1 if enabled else 0)


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


READY_FIRST_WAIT = 2.0  # seconds a probe waits for the first round after start-up
CHECK_TIMEOUT = 1.0     # seconds each upstream has to answer a round's health check


async def check_dependencies(app: web.Application) -> Checks:
    """One round: Redis answers PING (when the cache is on) and every upstream answers HTTP below 500."""
    gateway = app[GATEWAY]
    session = app[SESSION]
    checks: Checks = {}
    if gateway.cache_enabled:
        checks["redis"] = "ok" if await app[STORE].ping() else "unavailable"

    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)

    async def upstream(base: str) -> str:
        try:
            async with session.get(base + "/-/health", timeout=timeout) as resp:
                return "ok" if resp.status < 500 else f"status {resp.status}"
        except (aiohttp.ClientError, TimeoutError):
            return "unreachable"

    upstreams = gateway.generation.config.upstreams
    found = await asyncio.gather(*(upstream(base) for base in upstreams.values()))
    checks.update((f"upstream:{name}", state) for name, state in zip(upstreams, found))
    return checks


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
