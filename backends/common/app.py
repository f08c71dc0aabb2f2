"""`make_app`: the shape every service shares (middlewares, body limit, db pool, Bearer auth, health)."""
from __future__ import annotations

from collections.abc import Collection, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from backends.common.accesslog import ServiceAccessLog, access_middleware
from backends.common.db import DB_POOL, pool_ctx
from backends.common.errors import bad_request, error_middleware
from backends.common.health import PUBLIC as HEALTH_ROUTES, routes as health_routes
from backends.common.tokens import TokenVerifier, TokenVersions, bearer_token
from cachegate.config import Config
from cachegate.errors import ConfigError

CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
TOKEN_VERSIONS: web.AppKey[TokenVersions] = web.AppKey("token_versions", TokenVersions)
CALLER: web.RequestKey[int] = web.RequestKey("caller", int)


def auth_middleware(verifier: TokenVerifier, versions: TokenVersions, *,
                    public: Collection[tuple[str, str]] = ()) -> Middleware:
    """Require a valid Bearer token of an existing user, at its current token version, on every route
    except the (method, path template) pairs in `public`; refuse two Authorization headers everywhere.

    The service checks the token itself even though the proxy does too: a service must be safe to
    reach without the proxy in front of it.
    """
    public_routes = frozenset(public)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        presented = request.headers.getall("Authorization", ())
        if len(presented) > 1:
            raise bad_request("more than one Authorization header; send exactly one")
        match = request.match_info
        resource = match.route.resource
        # Unrouted requests (404/405) fall through to aiohttp's own answer, rendered as JSON.
        if match.http_exception is None and resource is not None:
            if (request.method, resource.canonical) not in public_routes:
                claims = verifier.verify(bearer_token(presented[0] if presented else None))
                await versions.check(request.app[DB_POOL], claims)
                request[CALLER] = claims.user_id
        return await handler(request)

    return middleware


def make_app(config: Config, service: str, routes: Iterable[web.AbstractRouteDef], *, auth: bool = True,
             public: Collection[tuple[str, str]] = ()) -> web.Application:
    """A service app: its access log, JSON errors, `client_max_size` from services.<service>.max_body, the
    pool, `GET /-/health` (no token), and (by default) auth."""
    if service not in config.services:
        raise ConfigError(f"services.{service}: not configured (known: {', '.join(sorted(config.services))})")
    middlewares: list[Middleware] = [error_middleware]
    access = ServiceAccessLog(config, service) if config.services[service].access_log else None
    if access is not None:
        middlewares.insert(0, access_middleware(access))
    versions = TokenVersions()
    if auth:
        middlewares.append(auth_middleware(TokenVerifier(config.auth), versions,
                                           public=frozenset(public) | HEALTH_ROUTES))
    app = web.Application(middlewares=middlewares, client_max_size=config.services[service].max_body)
    app[CONFIG] = config
    app[TOKEN_VERSIONS] = versions
    app.cleanup_ctx.append(pool_ctx(config.mariadb))
    app.add_routes(health_routes)
    if access is not None:
        app.cleanup_ctx.append(access.ctx)
    app.add_routes(routes)
    return app


def caller(request: web.Request) -> int:
    """The verified user id of the request's Bearer token."""
    return request[CALLER]
