"""The trips service app."""
from __future__ import annotations

from aiohttp import web

from backends.common.app import make_app
from backends.trips import handlers
from cachegate.config import Config


def create_app(config: Config) -> web.Application:
    return make_app(config, "trips", handlers.routes)
