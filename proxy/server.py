"""Running the proxy: one process, or a master with N workers sharing the port (reuse_port).

With one worker the process serves the API and the admin listener itself. With more, the master serves only
the admin listener and relays to its workers by signal: SIGHUP reload, SIGUSR1 reopen the log files (what
logrotate sends), and between master and workers only, SIGRTMIN+1 cache off and SIGRTMIN+2 cache on
(proxy/control.py: the master checks a new config before any worker sees it, and moves the key epoch once;
the switch itself is in a file the master writes before it signals, since pending signals come unordered).
Purges go straight to Redis from the master. Workers run `python -m proxy`, as the launcher does.

Every listener accepts through proxy/listener.py (header deadline, connection limit); the soft file limit
is raised to the hard one at start. SIGTERM (or SIGINT) drains: /-/ready answers 503 for `proxy.drain`
while requests are still served, then the listener closes, the requests in flight finish (within the
write fence's lifetime, the longest a request may take) and the process exits. A second signal cuts the
drain short. A master passes SIGTERM to its workers, which drain alike.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop
from aiohttp import web

from cachegate.config import Config
from cachegate.logfiles import reopen_all, setup_logging
from proxy.admin import create_admin_app
from proxy.app import REDIS_POOL, create_app, make_redis, make_store, start_cluster_client
from proxy.appkeys import METRICS, READINESS
from proxy.control import (CACHE_OFF, CACHE_ON, SWITCH_ENV, MasterControl, ProcessControl, read_switch,
                           write_switch)
from proxy.errors import ConfigError
from proxy.listener import AnswerHook, Bounds, Listener, bind, raise_file_limit
from proxy.metrics import Metrics
from proxy.workermetrics import METRICS_DIR_ENV

log = logging.getLogger("cachegate.proxy")
WORKER_ENV = "CACHEGATE_PROXY_WORKER"
BACKLOG = 1024          # the public listener's accept queue: a burst of 1,000 new clients fits
ADMIN_CONNECTIONS = 32  # the admin listener serves a few operators and scripts
# After an answer to a request whose body was not read (413, 408), aiohttp reads and drops what still comes
# this long before it closes, so the close does not reset the answer away (its default, 10 s, kept each
# promised 100 GB body's connection that long).
LINGER = 2.0
# Descriptors a process keeps beside its clients': the upstream pools (proxy.upstream_pool each), two Redis
# clients' pools, the lookups' and the revocations' own connections, the admin listener, and some for the
# listening sockets, the loop, the logs and the files the process reads.
_OTHER_FILES = 2 + ADMIN_CONNECTIONS + 64
_HOOK_LOG = logging.getLogger("cachegate.listener.answers")  # aiohttp's access logger slot; never logs
# What a master relays to its workers. Each ends a process that has no handler for it yet, so a worker starts
# with them blocked (the mask is inherited through exec) and unblocks them once its handlers are in place: a
# switch, reload or reopen sent while it starts waits for it instead of killing it.
RELAYED = frozenset({signal.SIGHUP, signal.SIGUSR1, CACHE_OFF, CACHE_ON})


def serve(config: Config, workers: int | None = None) -> None:
    """Block serving until SIGTERM or SIGINT."""
    setup_logging(config.logging.level)
    workers = workers or config.proxy.workers
    worker = bool(os.environ.get(WORKER_ENV))
    # A secret missing or unreadable is refused before any port is bound (ConfigError, exit 2). Only the
    # process with the admin listener (the single one, or the master) needs the admin token.
    config.redis.password()
    if not worker:
        config.proxy.admin_token()
    soft, hard = raise_file_limit()
    log.info("file limit %d (hard %d): up to %d client connections", soft, hard,
             min(config.proxy.max_connections, soft - reserved_files(config)))
    if worker:
        runner = _serve_worker(config, shared_port=True)
    elif workers == 1:
        runner = _serve_single(config)
    else:
        runner = _serve_master(config, workers)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
        loop_runner.run(runner)


def reserved_files(config: Config) -> int:
    """Descriptors the process may need beside its client connections."""
    return len(config.upstreams) * config.proxy.upstream_pool + 2 * REDIS_POOL + _OTHER_FILES


def runner_options(config: Config) -> dict:
    """aiohttp's part of the listener's bounds: the idle time of a connection, the lingering of an unread
    body, the wait for requests in flight at shutdown; its access-logger slot tells each answer's end."""
    return {"handle_signals": False, "access_log": _HOOK_LOG, "access_log_class": AnswerHook,
            "keepalive_timeout": config.proxy.keepalive_timeout, "lingering_time": LINGER,
            "shutdown_timeout": config.cache.write_fence}


async def listen(runner: web.AppRunner, config: Config, host: str, port: int, *, max_connections: int,
                 reuse_port: bool = False, name: str = "proxy", metrics: Metrics | None = None) -> Listener:
    """Serve `runner`'s application on host:port through a Listener (already set up, accepting)."""
    assert runner.server is not None, "runner.setup() first"
    on_close = None if metrics is None else (lambda reason: metrics.connections_closed.labels(reason).inc())
    listener = Listener(bind(host, port, backlog=BACKLOG, reuse_port=reuse_port), runner.server,
                        Bounds(config.proxy.header_timeout, max_connections, reserved_files(config)),
                        name=name, on_close=on_close)
    listener.start()
    if metrics is not None:
        metrics.connections.set_function(lambda: listener.open_connections)
    return listener


async def _start_api(config: Config, *, shared_port: bool
                     ) -> tuple[web.AppRunner, web.Application, Listener]:
    app = create_app(config)
    runner = web.AppRunner(app, **runner_options(config))
    await runner.setup()
    listener = await listen(runner, config, config.proxy.host, config.proxy.port,
                            max_connections=config.proxy.max_connections, reuse_port=shared_port,
                            metrics=app[METRICS])
    # Everything made so far (modules, the app, its clients) lives as long as the process: frozen out of the
    # collector's reach, so the full collections that the request churn triggers stay short. Measured with
    # wrk at 64 connections on the hit path: p99 about 20-30 ms instead of 35-45 ms at the same p50.
    gc.collect()
    gc.freeze()
    return runner, app, listener


async def _start_admin(config: Config, control: ProcessControl | MasterControl
                       ) -> tuple[web.AppRunner, Listener]:
    admin = web.AppRunner(create_admin_app(config, control), **runner_options(config))
    await admin.setup()
    listener = await listen(admin, config, config.proxy.admin_host, config.proxy.admin_port,
                            max_connections=ADMIN_CONNECTIONS, name="admin")
    return admin, listener


async def _drain(app: web.Application, config: Config, hurry: asyncio.Event) -> None:
    """Not ready for `proxy.drain` (balancers take the process out) while requests are still served."""
    app[READINESS].drain()
    log.info("draining: /-/ready answers 503 for %gs, then the listener closes", config.proxy.drain)
    try:
        await asyncio.wait_for(hurry.wait(), config.proxy.drain)  # the drain period itself, or a 2nd signal
    except TimeoutError:
        pass


async def _stop(runner: web.AppRunner, listener: Listener) -> None:
    """Accept no more, then let aiohttp finish the requests in flight and close the connections."""
    await listener.close()
    await runner.cleanup()


def _install_signals(control: ProcessControl | MasterControl, stop: asyncio.Event, *,
                     switches: bool = True, hurry: asyncio.Event | None = None) -> None:
    """SIGTERM and SIGINT stop (a second one sets `hurry`); SIGHUP reloads; SIGUSR1 reopens the log files (a
    master passes it on to its workers); a worker also takes its master's cache switches (CACHE_OFF,
    CACHE_ON)."""
    loop = asyncio.get_running_loop()

    def stopping() -> None:
        if stop.is_set() and hurry is not None:
            hurry.set()
        stop.set()


    def spawn(coro_factory, what: str) -> None:
        loop.create_task(_logged(coro_factory(), what))

    def reopen() -> None:
        reopen_all()
        if isinstance(control, MasterControl):
            control.relay(signal.SIGUSR1)
        log.info("log files reopened")

    loop.add_signal_handler(signal.SIGHUP, spawn, control.reload, "reload")
    loop.add_signal_handler(signal.SIGUSR1, reopen)
    if switches:
        def switched(signalled: bool) -> None:
            enabled = read_switch(os.environ.get(SWITCH_ENV), signalled)
            spawn(lambda: control.set_cache(enabled), "cache on" if enabled else "cache off")
        loop.add_signal_handler(CACHE_OFF, switched, False)
        loop.add_signal_handler(CACHE_ON, switched, True)
    loop.add_signal_handler(signal.SIGTERM, stopping)
    loop.add_signal_handler(signal.SIGINT, stopping)


async def _serve_single(config: Config) -> None:
    stop, hurry = asyncio.Event(), asyncio.Event()
    runner, app, listener = await _start_api(config, shared_port=False)
    control = ProcessControl(app)
    _install_signals(control, stop, switches=False, hurry=hurry)  # the admin listener switches the cache
    admin, admin_listener = await _start_admin(config, control)
    log.info("proxy on http://%s:%d, admin on http://%s:%d, cache %s", config.proxy.host, config.proxy.port,
             config.proxy.admin_host, config.proxy.admin_port, "on" if config.cache.enabled else "off")
    await stop.wait()
    await _drain(app, config, hurry)
    await _stop(runner, listener)
    await _stop(admin, admin_listener)


async def _serve_worker(config: Config, *, shared_port: bool) -> None:
    stop, hurry = asyncio.Event(), asyncio.Event()
    runner, app, listener = await _start_api(config, shared_port=shared_port)
    # Its master moves the epoch, once.
    _install_signals(ProcessControl(app, moves_epoch=False), stop, hurry=hurry)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED)  # held since the master started us: handled now
    log.info("proxy worker serving http://%s:%d", config.proxy.host, config.proxy.port)
    await stop.wait()
    await _drain(app, config, hurry)
    await _stop(runner, listener)


async def _serve_master(config: Config, count: int) -> None:
    if config.path is None:
        raise ConfigError("--workers needs a config file the workers can read")
    stop = asyncio.Event()
    argv = [sys.executable, "-m", "proxy", "--config", str(Path(config.path).resolve())]

    # Each worker's metrics, for the scrape that reaches any one of them (proxy/workermetrics.py).
    figures = config.stack.data_dir / "run" / f"proxy-{os.getpid()}-metrics"
    shutil.rmtree(figures, ignore_errors=True)
    figures.mkdir(parents=True)
    handle, name = tempfile.mkstemp(prefix="cachegate-switch-")
    os.close(handle)
    switch_file = Path(name)
    write_switch(switch_file, config.cache.enabled)

    def spawn(cache_enabled: bool) -> subprocess.Popen:
        # A worker started later (after a crash) follows the cache switch as it is now, not as in the file.
        env = {**os.environ, WORKER_ENV: "1", "CACHEGATE_CACHE": "on" if cache_enabled else "off",
               METRICS_DIR_ENV: str(figures), SWITCH_ENV: str(switch_file)}
        held = signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED)  # the child inherits the mask (RELAYED)
        try:
            return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    workers = [spawn(config.cache.enabled) for _ in range(count)]
    redis, metrics = make_redis(config), Metrics()
    await start_cluster_client(redis)
    control = MasterControl(config, workers, make_store(config, redis, metrics), metrics,
                            switch_file=switch_file)
    _install_signals(control, stop, switches=False)
    admin, admin_listener = await _start_admin(config, control)
    log.info("proxy master: %d workers on http://%s:%d, admin on http://%s:%d", count, config.proxy.host,
             config.proxy.port, config.proxy.admin_host, config.proxy.admin_port)
    while not stop.is_set():
        for i, proc in enumerate(workers):
            if proc.poll() is not None:
                log.error("worker %d exited with %s; starting another", proc.pid, proc.returncode)
                (figures / f"{proc.pid}.prom").unlink(missing_ok=True)  # a dead worker's counts go with it
                workers[i] = spawn(control.cache_enabled)
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            pass
    for proc in workers:
        if proc.poll() is None:
            proc.terminate()  # each drains, then finishes what it has in flight
    for proc in workers:
        try:
            await asyncio.to_thread(proc.wait, config.proxy.drain + config.cache.write_fence + 2)
        except subprocess.TimeoutExpired:
            proc.kill()
    await _stop(admin, admin_listener)
    await redis.aclose()
    shutil.rmtree(figures, ignore_errors=True)
    switch_file.unlink(missing_ok=True)


async def _logged(coro, what: str) -> None:
    try:
        await coro
    except ConfigError as exc:
        log.error("%s refused, the previous config keeps serving: %s", what, exc.message)
    except Exception as exc:  # a failed admin action must never take the process down
        log.error("%s failed: %s", what, exc)
