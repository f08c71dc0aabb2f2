"""Process control, one implementation: reload and the cache switch, for one process or a master and workers.

The rules are the same for both. A reload loads the file and checks it (proxy.generation.check_reload)
before anything changes. Turning the cache on, by an admin call or by a reload, first moves the key epoch,
once: if Redis cannot be reached, the call is refused and nothing changes. Then the change is applied: to
this process's gateway (one process, or a worker), or relayed by the master to its workers by signal
(SIGHUP reload, SIGUSR1 cache off, SIGUSR2 cache on). A worker does not move the epoch again: its master did.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from abc import ABC, abstractmethod

from aiohttp import web

from cachegate.config import Config, load_config
from proxy.appkeys import DRAINING, GATEWAY, METRICS, READINESS, SESSION, STORE
from proxy.generation import build_generation, check_reload, drain, move_epoch
from proxy.store import CacheStore
from strategies.registry import REGISTRY

log = logging.getLogger("cachegate.proxy")


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

    async def purge_key(self, key: str) -> None:
        await self.store.purge_key(key)

    async def purge_tag(self, tag: str) -> None:
        await self.store.purge_tag(tag)

    @abstractmethod
    def _apply(self, config: Config) -> int: ...

    @abstractmethod
    def _switch(self, enabled: bool) -> None: ...

    @abstractmethod
    def state(self) -> dict: ...


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
                # What /-/ready no longer tells anyone who asks: which check failed.
                "ready": readiness.ready, "checks": readiness.checks or {}}


class MasterControl(_Control):
    """A master relaying to its workers: it checks, moves the epoch once, then signals every live worker."""

    def __init__(self, config: Config, workers: list[subprocess.Popen], store: CacheStore) -> None:
        super().__init__(store, moves_epoch=True)
        self._config, self.workers = config, workers
        self.generation, self._cache_enabled = 1, config.cache.enabled

    @property
    def config(self) -> Config:
        return self._config

    @property
    def cache_enabled(self) -> bool:
        return self._cache_enabled

    def _apply(self, config: Config) -> int:
        self._config = config
        self.generation += 1
        self._cache_enabled = config.cache.enabled
        self._signal(signal.SIGHUP)
        return self.generation

    def _switch(self, enabled: bool) -> None:
        self._cache_enabled = enabled
        self._signal(signal.SIGUSR2 if enabled else signal.SIGUSR1)

    def _signal(self, sig: int) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.kill(proc.pid, sig)

    def state(self) -> dict:
        return {"pid": os.getpid(), "workers": [p.pid for p in self.workers if p.poll() is None],
                "generation": self.generation, "cache_enabled": self._cache_enabled,
                "routes": len(self._config.routes), "breaker": self.store.breaker_state}
