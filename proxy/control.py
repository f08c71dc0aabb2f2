"""Process control, one implementation: reload and the cache switch, for one process or a master and workers.

The rules are the same for both. A reload loads the file and checks it (proxy.generation.check_reload)
before anything changes. Turning the cache on, by an admin call or by a reload, first moves the key epoch,
once: if Redis cannot be reached, the call is refused and nothing changes. Then the change is applied: to
this process's gateway (one process, or a worker), or relayed by the master to its workers by signal
(SIGHUP reload, CACHE_OFF, CACHE_ON). A worker does not move the epoch again: its master did.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path

from aiohttp import web

from cachegate.config import Config, load_config
from proxy.appkeys import DRAINING, GATEWAY, METRICS, READINESS, SESSION, STORE
from proxy.explain import explain, resolve
from proxy.generation import build_generation, check_reload, drain, move_epoch
from proxy.metrics import Metrics
from proxy.router import Router
from proxy.store import CacheStore
from strategies.registry import REGISTRY

log = logging.getLogger("cachegate.proxy")
# The master's cache switch for its workers: real-time signals, so that SIGUSR1 stays what logrotate sends.
CACHE_OFF, CACHE_ON = signal.SIGRTMIN + 1, signal.SIGRTMIN + 2
# Signals pending together are handled in no given order (uvloop runs them last first): so the signal only
# says "the switch moved", and the master writes where it stands now to this file (its path in the workers'
# environment) before it signals; a worker applies what the file says.
SWITCH_ENV = "CACHEGATE_SWITCH_FILE"


def write_switch(path: Path, enabled: bool) -> None:
    """Replace the switch file at once: a worker never reads half of it."""
    part = path.with_name(path.name + ".new")
    part.write_text("on" if enabled else "off")
    os.replace(part, path)


def read_switch(path: str | None, signalled: bool) -> bool:
    """The master's switch as it stands now; what the signal meant when there is no file to read."""
    try:
        return Path(path).read_text() == "on" if path else signalled
    except OSError:
        return signalled


class _Control(ABC):
    """What the admin listener acts on (proxy.admin.Control)."""

    def __init__(self, store: CacheStore, *, moves_epoch: bool) -> None:
        self.store = store
        self._moves_epoch = moves_epoch

    @property
    @abstractmethod
    def config(self) -> Config:
        """The config in force (its process settings are the ones the process started with)."""

    @property
    @abstractmethod
    def cache_enabled(self) -> bool: ...

    async def reload(self) -> int:
        """Load the config again and apply it whole; ConfigError (nothing changed) when it is invalid or
        changes a setting of the process. Returns the new config generation."""
        current = self.config
        config = load_config(current.path, strategies=REGISTRY)
        check_reload(current, config)
        if config.cache.enabled and not self.cache_enabled and self._moves_epoch:
            await move_epoch(self.store)
        return self._apply(config)

    async def set_cache(self, enabled: bool) -> None:
        if enabled and not self.cache_enabled and self._moves_epoch:
            await move_epoch(self.store)
        self._switch(enabled)

    @property
    @abstractmethod
    def router(self) -> Router:
        """The route table requests are matched against now."""

    async def purge_key(self, key: str) -> int:
        """Entries removed: 1 or 0 (each purge is a drop with a fence: proxy/store.py)."""
        removed = await self.store.purge_key(key)
        self.store_metrics.purged.labels("key").inc(removed)
        return removed

    async def purge_url(self, target: str, caller: str | None) -> tuple[str, int]:
        """The key a GET of `target` reads (its rule renders it, as for a request), and what was removed."""
        found = resolve(self.router, "GET", target, caller, cache_enabled=True, need_key=True)
        assert found.key is not None
        removed = await self.store.purge_key(found.key)
        self.store_metrics.purged.labels("url").inc(removed)
        return found.key, removed

    async def purge_tag(self, tag: str) -> int:
        removed = await self.store.purge_tag(tag, fence=self.config.cache.write_fence)
        self.store_metrics.purged.labels("tag").inc(removed)
        return removed

    async def purge_prefix(self, prefix: str) -> int:
        removed = await self.store.purge_prefix(prefix)
        self.store_metrics.purged.labels("prefix").inc(removed)
        return removed

    async def explain(self, method: str, target: str, caller: str | None) -> dict:
        return await explain(self.router, self.store, method, target, caller,
                             cache_enabled=self.cache_enabled, invalidator_behind=self.invalidator_behind)

    @property
    def invalidator_behind(self) -> bool:
        """Whether this process bypasses the invalidator's routes now (a master, serving nothing: no)."""
        return False

    @property
    @abstractmethod
    def store_metrics(self) -> Metrics:
        """Where the purges are counted."""

    @abstractmethod
    def _apply(self, config: Config) -> int: ...

    @abstractmethod
    def _switch(self, enabled: bool) -> None: ...

    @abstractmethod
    def state(self) -> dict: ...

    @abstractmethod
    def figures(self) -> dict: ...


class ProcessControl(_Control):
    """This very process: the only one (workers=1), or a worker driven by its master's signals."""

    def __init__(self, app: web.Application, *, moves_epoch: bool = True) -> None:
        super().__init__(app[STORE], moves_epoch=moves_epoch)
        self.app = app

    @property
    def config(self) -> Config:
        return self.app[GATEWAY].generation.config

    @property
    def cache_enabled(self) -> bool:
        return self.app[GATEWAY].cache_enabled

    @property
    def invalidator_behind(self) -> bool:
        return self.app[GATEWAY].invalidator_behind

    @property
    def router(self) -> Router:
        return self.app[GATEWAY].generation.router

    @property
    def store_metrics(self) -> Metrics:
        return self.app[METRICS]

    def _apply(self, config: Config) -> int:
        app, gateway = self.app, self.app[GATEWAY]
        generation = build_generation(gateway.generation.number + 1, config, store=app[STORE],
                                      session=app[SESSION], metrics=app[METRICS], registry=REGISTRY)
        previous, gateway.generation = gateway.generation, generation
        # The old generation's in-flight requests finish with it, and so do the fetches they wait on:
        # cancelling those would fail requests that were accepted before the reload.
        draining = app[DRAINING]
        task = asyncio.get_running_loop().create_task(drain(previous))
        draining.add(task)
        task.add_done_callback(draining.discard)
        self._switch(config.cache.enabled)
        app[METRICS].config_generation.set(generation.number)
        log.info("config generation %d loaded: %d routes, cache %s", generation.number, len(config.routes),
                 "on" if gateway.cache_enabled else "off")
        return generation.number

    def _switch(self, enabled: bool) -> None:
        self.app[GATEWAY].cache_enabled = enabled
        self.app[METRICS].cache_enabled.set(1 if enabled else 0)

    def state(self) -> dict:
        gateway, readiness = self.app[GATEWAY], self.app[READINESS]
        return {"pid": os.getpid(), "generation": gateway.generation.number,
                "cache_enabled": gateway.cache_enabled,
                "routes": len(gateway.generation.config.routes), "breaker": self.store.breaker_state,
                "epoch": self.store.epoch,
                # What /-/ready no longer tells anyone who asks: which check failed.
                "ready": readiness.ready, "checks": readiness.checks or {}}

    def figures(self) -> dict:
        """The state and this process's figures per route and upstream (the status page)."""
        config = self.app[GATEWAY].generation.config
        return {**self.state(), "workers": None,
                **self.app[METRICS].summary([r.name for r in config.routes], list(config.upstreams))}


class MasterControl(_Control):
    """A master relaying to its workers: it checks, moves the epoch once, then signals every live worker."""

    def __init__(self, config: Config, workers: list[subprocess.Popen], store: CacheStore,
                 metrics: Metrics, *, switch_file: Path | None = None) -> None:
        super().__init__(store, moves_epoch=True)
        self._config, self.workers, self._metrics = config, workers, metrics
        self.generation, self._cache_enabled = 1, config.cache.enabled
        self._router = Router(config.routes)
        self._switch_file = switch_file  # where the workers read the switch (SWITCH_ENV)

    @property
    def config(self) -> Config:
        return self._config

    @property
    def cache_enabled(self) -> bool:
        return self._cache_enabled

    @property
    def router(self) -> Router:
        return self._router

    @property
    def store_metrics(self) -> Metrics:
        return self._metrics

    def _apply(self, config: Config) -> int:
        self._config, self._router = config, Router(config.routes)
        self.generation += 1
        self._cache_enabled = config.cache.enabled
        self.relay(signal.SIGHUP)
        return self.generation

    def _switch(self, enabled: bool) -> None:
        self._cache_enabled = enabled
        if self._switch_file is not None:
            write_switch(self._switch_file, enabled)  # before the signal: a worker reads it on receipt
        self.relay(CACHE_ON if enabled else CACHE_OFF)

    def relay(self, sig: int) -> None:
        """`sig` to every live worker."""
        for proc in self.workers:
            if proc.poll() is None:
                os.kill(proc.pid, sig)

    def state(self) -> dict:
        return {"pid": os.getpid(), "workers": [p.pid for p in self.workers if p.poll() is None],
                "generation": self.generation, "cache_enabled": self._cache_enabled,
                "routes": len(self._config.routes), "breaker": self.store.breaker_state,
                "epoch": self.store.epoch}

    def figures(self) -> dict:
        """The master serves no request: each worker counts its own (its /-/metrics)."""
        return {**self.state(), "ready": None, "checks": {}, "routes_figures": [], "upstreams_figures": []}

