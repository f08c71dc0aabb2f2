"""A config generation: what a reload changes, built whole (the gateway swaps it in one assignment), drained.

A generation owns every setting a reload applies (cachegate/settings.py, GENERATION): the route table and
its strategies (with the cache section's settings), the upstreams with their time-outs, the Basic
exchange's target, the access-log switch. The process owns the rest (listeners, the Redis clients and
store, the token rules, the admin token): `check_reload` refuses a new config that changes any of it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import aiohttp

from cachegate.config import Config, changed_settings
from cachegate.invalidations import affected_routes
from cachegate.settings import PROCESS
from proxy.auth import BasicExchange
from proxy.errors import CacheUnavailable, ConfigError
from proxy.metrics import Metrics
from proxy.router import Router
from proxy.store import CacheStore
from proxy.upstream import Upstream
from strategies.base import Strategy

log = logging.getLogger("cachegate.proxy")


@dataclass(frozen=True, slots=True)
class Generation:
    """What a request reads of its config; an in-flight request keeps the one it started with."""
    number: int
    config: Config
    router: Router
    strategies: Mapping[str, Strategy]
    upstream: Upstream
    exchange: BasicExchange
    log_access: bool


def build_generation(number: int, config: Config, *, store: CacheStore, session: aiohttp.ClientSession,
                     metrics: Metrics, registry: Mapping[str, type[Strategy]]) -> Generation:
    proxy = config.proxy
    upstream = Upstream(session, config.upstreams, metrics, max_body=proxy.max_body,
                        connect_timeout=proxy.upstream_connect_timeout, timeout=proxy.upstream_timeout)
    strategies: dict[str, Strategy] = {}
    for route in config.routes:
        if route.strategy not in strategies:
            strategy = registry[route.strategy]
            strategies[route.strategy] = strategy(store=store, upstream=upstream, metrics=metrics,
                                                  settings=config.cache)
    exchange = BasicExchange(upstream, config.auth.exchange_upstream, config.auth.exchange_path)
    router = Router(config.routes, invalidated=invalidated_routes(config))
    return Generation(number, config, router, strategies, upstream, exchange, proxy.access_log)


def check_reload(current: Config, new: Config) -> None:
    """ConfigError naming the first changed setting of the process: only a restart applies it, and a reload
    must not seem to have done so (an admin token would seem rotated while the old one still works)."""
    for before, after in changed_settings(current, new):
        if before.lifetime == PROCESS:
            raise ConfigError(f"{before.key}: changed from {_shown(before.value)} to {_shown(after.value)}; "
                              "that needs a restart, not a reload")


def _shown(value: Any) -> str:
    return "nothing" if value is None else str(value)


async def drain(generation: Generation) -> None:
    for strategy in generation.strategies.values():
        await strategy.drain()


async def close(generation: Generation) -> None:
    """Let background refreshes of a generation finish (or stop) before its clients go away."""
    for strategy in generation.strategies.values():
        await strategy.close()


async def move_epoch(store: CacheStore) -> None:
    """Turning the cache on starts a new key epoch: writes made while it was off never touched Redis."""
    try:
        await store.new_epoch()
    except CacheUnavailable as exc:
        raise CacheUnavailable(f"cache stays off: Redis is unavailable ({exc.message})") from exc


def invalidated_routes(config: Config) -> frozenset[int]:
    """The routes the invalidator's rules cover, when it runs: they bypass the cache while it is behind."""
    if config.invalidator is None or not config.invalidator.enabled:
        return frozenset()
    return affected_routes(config.routes, config.invalidations)
