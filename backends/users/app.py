"""The users service app."""
from __future__ import annotations

from aiohttp import web

from backends.common.app import make_app
from backends.users import auth, handlers
from cachegate.config import Config
from cachegate.tokens import TokenIssuer

# Registering and exchanging credentials are the only calls without a Bearer token.
PUBLIC = (("POST", "/users"), ("POST", "/auth/token"))


def create_app(config: Config) -> web.Application:
    app = make_app(config, "users", [*auth.routes, *handlers.routes], public=PUBLIC)
    app[auth.ISSUER] = TokenIssuer(config.auth)
    return app
