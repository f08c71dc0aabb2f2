"""`run_service(name, config)`: serve one backend service with uvloop until SIGINT or SIGTERM.

`python -m backends.runner users [config.yaml]`. aiohttp's run_app turns SIGTERM into a graceful
shutdown: the listener closes, requests in flight finish (up to SHUTDOWN_TIMEOUT_S), then cleanup_ctx
closes the pool.

The listen backlog is LISTEN_BACKLOG (1024, aiohttp's default is 128): every gateway process may open
proxy.upstream_pool connections at once, and the config refuses more than the backlog holds. The services'
only client is the gateway, so they set no connection limit of their own; aiohttp's keep-alive timeout
(which also closes a connection that sends no complete request head in that time) bounds idle ones.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys

import uvloop
from aiohttp import web

from cachegate.config import Config, load_config
from cachegate.logfiles import reopen_all, setup_logging
from cachegate.settings import LISTEN_BACKLOG

SERVICES = ("users", "paths", "trips")
SHUTDOWN_TIMEOUT_S = 10.0
KEEPALIVE_TIMEOUT_S = 75.0  # aiohttp's default, said here: it must outlast the gateway pool's 30 s
log = logging.getLogger("backends.runner")


def run_service(name: str, config: Config) -> None:
    """Serve `backends.<name>.app.create_app(config)` on config.services[name].

    Its access log is the service's own (backends/common/accesslog.py), not aiohttp's: under load aiohttp's
    costs more CPU than the handlers do. SIGUSR1 reopens the log files (logrotate).
    """
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
    if name not in config.services:
        raise ValueError(f"config has no services.{name}")
    where = config.services[name]
    setup_logging(config.logging.level)
    app = importlib.import_module(f"backends.{name}.app").create_app(config)

    def reopen() -> None:
        reopen_all()
        log.info("log files reopened")

    async def reopen_on_sigusr1(app: web.Application) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, reopen)

    app.on_startup.append(reopen_on_sigusr1)
    log.info("serving %s on %s:%d", name, where.host, where.port)
    web.run_app(
        app,
        host=where.host,
        port=where.port,
        backlog=LISTEN_BACKLOG,
        keepalive_timeout=KEEPALIVE_TIMEOUT_S,
        loop=uvloop.new_event_loop(),
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        print=None,
    )


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in SERVICES:
        sys.exit(f"usage: python -m backends.runner {{{'|'.join(SERVICES)}}} [config.yaml]")
    run_service(args[0], load_config(args[1] if len(args) > 1 else None))


if __name__ == "__main__":
    main()
