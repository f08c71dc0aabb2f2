"""create_app(config): the gateway's aiohttp application, owning every client it uses."""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import AsyncIterator

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from cachegate.config import Config
from cachegate.errors import ConfigError
from proxy import generation as generations
from proxy.accesslog import AccessLog
from proxy.appkeys import (ACCESS_LOG, CONFIG, DRAINING, GATEWAY, METRICS, READINESS, REDIS, REVOCATIONS,
                           SESSION, STORE, WORKER_METRICS)
from proxy.auth import Authenticator
from proxy.clusterclient import ClusterLookups, make_cluster_client, start_cluster_client
from proxy.generation import invalidated_routes
from proxy.handler import Gateway
from proxy.lagwatch import LagWatch
from proxy.lookups import PipelinedLookups
from proxy.metrics import Metrics
from proxy.ops import check_dependencies, health, metrics_view, ready
from proxy.readiness import Readiness
from proxy.revocations import Revocations
from proxy.store import CacheStore
from proxy.upstream import make_session
from proxy.workermetrics import METRICS_DIR_ENV, WorkerMetrics
from strategies.registry import REGISTRY

log = logging.getLogger("cachegate.proxy")
REDIS_POOL = 64  # connections of each redis-py client (the store's, the revocations')


def create_app(config: Config, *, metrics: Metrics | None = None,
               access_log: AccessLog | None = None) -> web.Application:
    if not config.strategies_checked:  # the strategies rely on lifetimes resolved at load
        raise ConfigError("the proxy needs its config loaded with the strategy registry "
                          "(load_config(..., strategies=strategies.registry.REGISTRY))")
    # client_max_size is the application's, for its whole life: proxy.max_body is a process setting.
    app = web.Application(client_max_size=config.proxy.max_body)
    app[CONFIG] = config
    app[METRICS] = metrics or Metrics()
    app[ACCESS_LOG] = access_log or open_access_log(config)
    app[DRAINING] = set()
    app.cleanup_ctx.append(_clients)
    app.router.add_get("/-/health", health)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/-/metrics", metrics_view)
    # [\s\S], not `.`: a decoded %0A must reach the gateway (a JSON 400 bad_path), not end the match.
    app.router.add_route("*", r"/{tail:[\s\S]*}", _dispatch)
    return app


async def _clients(app: web.Application) -> AsyncIterator[None]:
    config, metrics = app[CONFIG], app[METRICS]
    redis = make_redis(config)
    session = make_session(per_upstream=config.proxy.upstream_pool)
    app[REDIS], app[SESSION] = redis, session
    await start_cluster_client(redis)
    lookups = make_lookups(config, redis)
    store = app[STORE] = make_store(config, redis, metrics, lookups=lookups)
    metrics.watch("cachegate_cache_epoch", "The key epoch this process last saw in Redis",
                  lambda: store.epoch)
    # A revocation is remembered until every token it voids has expired, leeway included (twice: a token
    # issued while its user was being changed may be stamped a little after the change).
    revocations_redis = make_redis(config)
    await start_cluster_client(revocations_redis)
    revocations = Revocations(revocations_redis, prefix=config.cache.prefix, timeout=config.redis.timeout,
                              lifetime=config.auth.token_ttl + 2 * config.auth.leeway)
    app[REVOCATIONS] = revocations
    auth = Authenticator(config.auth, revoked=revocations.below)
    first = generations.build_generation(1, config, store=store, session=session, metrics=metrics,
                                         registry=REGISTRY)
    gateway = app[GATEWAY] = Gateway(first, auth, metrics, app[ACCESS_LOG], revocations=revocations)
    metrics.config_generation.set(1)
    readiness = Readiness(lambda: check_dependencies(app), metrics=metrics,
                          interval=lambda: gateway.generation.config.proxy.readiness_interval)
    app[READINESS] = readiness
    loop = asyncio.get_running_loop()
    flusher = loop.create_task(app[ACCESS_LOG].run())
    checker = loop.create_task(readiness.run())
    follower = loop.create_task(revocations.run())
    watcher = _watch_invalidator(config, store, gateway, metrics)
    writer = None
    if os.environ.get(METRICS_DIR_ENV):  # a worker: its figures go to its master's folder, a scrape sums all
        workers = app[WORKER_METRICS] = WorkerMetrics(Path(os.environ[METRICS_DIR_ENV]), metrics)
        writer = loop.create_task(workers.run())
    try:
        await _in_step(revocations, config)
        yield
    finally:
        checker.cancel()
        if watcher is not None:
            watcher.cancel()
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        await revocations.stop(follower)
        flusher.cancel()
        for task in list(app[DRAINING]):  # at shutdown a retired generation's fetches are cancelled too
            task.cancel()
        # The flusher writes its last lines.
        await asyncio.gather(flusher, checker, *app[DRAINING], *([watcher] if watcher else []),
                             return_exceptions=True)
        await generations.close(gateway.generation)
        app[ACCESS_LOG].close()
        await session.close()
        if lookups is not None:
            await lookups.aclose()
        await redis.aclose()
        await revocations_redis.aclose()


def _watch_invalidator(config: Config, store: CacheStore, gateway: Gateway,
                       metrics: Metrics) -> asyncio.Task[None] | None:
    """With the invalidator on, a task that reads how far behind it is (proxy/lagwatch.py): until it has
    reported in within its bound, the routes its rules cover bypass the cache."""
    settings = config.invalidator
    if settings is None or not settings.enabled or not invalidated_routes(config):
        return None
    gateway.invalidator_behind = True  # until the first read says otherwise

    def changed(behind: bool) -> None:
        gateway.invalidator_behind = behind

    watch = LagWatch(store, bound=settings.lag_bound, interval=settings.check_interval, on_change=changed)
    metrics.watch("cachegate_invalidator_lag_seen_seconds", "How far behind the invalidator was at the last "
                  "read of its note (-1: no note)", lambda: -1.0 if watch.lag is None else watch.lag)
    metrics.watch("cachegate_invalidator_behind", "1 while the routes the invalidator covers bypass",
                  lambda: 1.0 if gateway.invalidator_behind else 0.0)
    return asyncio.get_running_loop().create_task(watch.run())


async def _in_step(revocations: Revocations, config: Config) -> None:
    """Serve once the revoked tokens are read, when Redis lets that be quick; otherwise they follow later."""
    try:
        await asyncio.wait_for(revocations.connected.wait(), 4 * config.redis.timeout)
    except TimeoutError:
        log.warning("serving before the revoked tokens could be read from Redis; they follow when it answers")


async def _dispatch(request: web.Request) -> web.StreamResponse:
    return await request.app[GATEWAY].handle(request)


def open_access_log(config: Config) -> AccessLog:
    """proxy-access.log in logging.access_dir (every worker appends to the one file), or standard output."""
    path = config.logging.access_file("proxy")
    return AccessLog(sys.stdout if path is None else None, path=path, fmt=config.logging.access_format)


def make_lookups(config: Config,
                 redis: aioredis.Redis | RedisCluster) -> PipelinedLookups | ClusterLookups | None:
    if isinstance(redis, RedisCluster):
        return ClusterLookups(redis, connect_timeout=config.redis.timeout, username=config.redis.username,
                              password=config.redis.password())
    if not config.redis.url.startswith("redis://"):
        return None  # TLS and unix sockets: redis-py's client does the lookups too
    return PipelinedLookups(config.redis.url, connect_timeout=config.redis.timeout,
                            username=config.redis.username, password=config.redis.password())


def make_redis(config: Config) -> aioredis.Redis | RedisCluster:
    if config.redis.cluster:
        # redis-py's own cluster client (proxy/clusterclient.py): REDIS_POOL connections per node.
        return make_cluster_client(config.redis.cluster_nodes, timeout=config.redis.timeout,
                                   username=config.redis.username, password=config.redis.password(),
                                   max_connections=REDIS_POOL)
    # One retry, on a broken connection only: a pooled connection from before a Redis restart fails once
    # (the server that had it is gone) and is made again at once, rather than counting as a failure (the
    # breaker, a missed write, an epoch move: one per pooled connection). A slow Redis costs one short
    # timeout, never a retry. Bytes out (no decode_responses): entries carry raw bodies.
    # A blocking pool: past REDIS_POOL connections a call waits (within the timeout) for one to come free,
    # where the default pool raises at once and turned a burst of fills into bypasses.
    # The credentials come from redis.username and redis.password_file: config refuses them in the URL.
    pool = aioredis.BlockingConnectionPool.from_url(
        config.redis.url, max_connections=REDIS_POOL, timeout=config.redis.timeout,
        socket_timeout=config.redis.timeout, socket_connect_timeout=config.redis.timeout,
        username=config.redis.username, password=config.redis.password(),
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
    return aioredis.Redis(connection_pool=pool)


def make_store(config: Config, redis: aioredis.Redis | RedisCluster, metrics: Metrics, *,
               lookups: PipelinedLookups | ClusterLookups | None = None) -> CacheStore:
    return CacheStore(redis, prefix=config.cache.prefix, timeout=config.redis.timeout,
                      breaker_failures=config.redis.breaker_failures,
                      breaker_reset=config.redis.breaker_reset, metrics=metrics, lookups=lookups)
