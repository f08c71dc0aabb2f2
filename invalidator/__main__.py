"""`python -m invalidator --config config.yaml`: the cache invalidator, its metrics on a port of its own."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from cachegate.config import Config, load_config
from cachegate.errors import ConfigError
from cachegate.logfiles import setup_logging
from invalidator.changes import Planner, RuleError
from invalidator.metrics import InvalidatorMetrics
from invalidator.reader import Source
from invalidator.service import Invalidator
from proxy.clusterclient import make_cluster_client, start_cluster_client
from proxy.revocations import Revocations
from proxy.store import CacheStore

log = logging.getLogger("cachegate.invalidator")
POOL = 16  # Redis connections: the actions of a batch go out this many at a time at most (redis-py queues)
REDIS_TIMEOUT = 1.0  # seconds, at least, for one Redis call
NO_BREAKER = 1_000_000_000


def make_redis(config: Config) -> aioredis.Redis | RedisCluster:
    """A client with the gateway's Redis user (the invalidator sends only commands the gateway sends): the
    gateway's cluster client on a Redis Cluster."""
    if config.redis.cluster:
        return make_cluster_client(config.redis.cluster_nodes, timeout=max(config.redis.timeout, REDIS_TIMEOUT),
                                   username=config.redis.username, password=config.redis.password(),
                                   max_connections=POOL)
    pool = aioredis.BlockingConnectionPool.from_url(
        config.redis.url, max_connections=POOL, timeout=max(config.redis.timeout, REDIS_TIMEOUT),
        socket_timeout=max(config.redis.timeout, REDIS_TIMEOUT),
        socket_connect_timeout=max(config.redis.timeout, REDIS_TIMEOUT),
        username=config.redis.username, password=config.redis.password(),
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
    return aioredis.Redis(connection_pool=pool)


def source_of(config: Config) -> Source:
    settings = config.invalidator
    assert settings is not None
    tables = tuple(sorted({rule.table for rule in config.invalidations}))
    return Source(nodes=config.mariadb.nodes, user=settings.user, password=settings.password(),
                  server_id=settings.server_id, schema=config.mariadb.database, tables=tables,
                  heartbeat=settings.heartbeat, connect_timeout=config.mariadb.connect_timeout)


def metrics_app(invalidator: Invalidator, metrics: InvalidatorMetrics) -> web.Application:
    async def scrape(request: web.Request) -> web.Response:
        now = time.time()
        metrics.position_age.set(now - invalidator.saved_at if invalidator.saved_at else 0)
        metrics.behind.set(now - invalidator.synced if invalidator.synced else 0)
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    async def health(request: web.Request) -> web.Response:
        state = invalidator.state()
        return web.Response(text=json.dumps(state), content_type="application/json",
                            status=200 if state["following"] else 503)

    async def unknown(request: web.Request) -> web.Response:
        body = {"error": {"code": "not_found", "message": "known paths: /metrics, /-/health"}}
        return web.Response(text=json.dumps(body), status=404, content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/-/health", health)
    app.router.add_route("*", "/{tail:.*}", unknown)
    return app


async def serve(config: Config) -> int:
    settings = config.invalidator
    assert settings is not None
    metrics = InvalidatorMetrics()
    redis, revocations_redis = make_redis(config), make_redis(config)
    await start_cluster_client(redis)
    await start_cluster_client(revocations_redis)
    # No breaker, and a longer time-out than the gateway's: nothing waits on the invalidator's calls, it
    # tries each again until it lands, and a breaker open for its reset would hold the note back too.
    store_timeout = max(config.redis.timeout, REDIS_TIMEOUT)
    store = CacheStore(redis, prefix=config.cache.prefix, timeout=store_timeout,
                       breaker_failures=NO_BREAKER, breaker_reset=config.redis.breaker_reset,
                       metrics=metrics.store, retries_writes=True)
    revocations = Revocations(revocations_redis, prefix=config.cache.prefix, timeout=store_timeout,
                              lifetime=config.auth.token_ttl + 2 * config.auth.leeway)
    invalidator = Invalidator(settings, Planner(config.invalidations), source_of(config), store, revocations,
                              metrics, marker_ttl=max(config.cache.tombstone_ttl, config.cache.write_fence))
    runner = web.AppRunner(metrics_app(invalidator, metrics), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info("invalidator: %d rule(s) on %s, metrics on %s:%d", len(config.invalidations),
             ", ".join(f"{config.mariadb.database}.{r.table}" for r in config.invalidations) or "no table",
             settings.host, settings.port)
    try:
        await invalidator.run(stopping)
    except RuleError as exc:
        log.error("%s; stopping (the gateway bypasses the cache for the rules' routes meanwhile)", exc)
        return 2
    finally:
        await runner.cleanup()
        await redis.aclose()
        await revocations_redis.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m invalidator", description=__doc__)
    parser.add_argument("--config", default=None,
                        help="config.yaml (default: $CACHEGATE_CONFIG or ./config.yaml)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        setup_logging(config.logging.level)
        if config.invalidator is None or not config.invalidator.enabled:
            raise ConfigError("invalidator.enabled is false: nothing to run")
        return asyncio.run(serve(config))
    except ConfigError as exc:
        print(f"invalidator: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
