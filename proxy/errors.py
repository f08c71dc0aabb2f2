"""The one exception tree of the gateway, and how each maps to an HTTP answer.

    CachegateError                      base (cachegate/errors.py); .status, .code, a message safe to show
    ├── ConfigError                     a bad config.yaml, refused at start and at reload (cachegate/errors)
    ├── RequestError (400)              a request the proxy itself refuses
    │   ├── BadPath (400)               a path with no one canonical form (proxy/canonical.py)
    │   ├── BadQuery (400)              a query string with no one canonical form
    │   ├── NotFound (404)              no route matches the path
    │   ├── MethodNotAllowed (405)      the path matches, the method does not (carries Allow)
    │   ├── RequestTimeout (408)        the body did not arrive within proxy.body_timeout
    │   └── PayloadTooLarge (413)
    ├── AuthError (401)                 missing, malformed, expired or badly signed (cachegate/errors.py)
    │   └── TokenRefused (401)          a Bearer token broke a rule of cachegate/tokens.py (its own codes)
    ├── UpstreamError (502)             the backend could not be reached or broke the connection
    │   └── UpstreamTimeout (504)       the backend did not answer in time
    └── CacheUnavailable                Redis down, slow or behind an open breaker; never reaches a
                                        client: strategies catch it and bypass the cache

Foreign exceptions (aiohttp, redis-py, python-jose) are mapped in the one module that calls the
library, with `raise Mapped(...) from exc`, so no other module needs to know them. The kernel's errors
are the roots, imported from here by the proxy's modules like the rest of the tree.
"""
from __future__ import annotations

from cachegate.errors import AuthError, CachegateError, ConfigError

__all__ = ["AuthError", "BadPath", "BadQuery", "CacheUnavailable", "CachegateError", "ConfigError",
           "MethodNotAllowed", "NotFound", "PayloadTooLarge", "RequestError", "RequestTimeout",
           "UpstreamError", "UpstreamTimeout"]


class RequestError(CachegateError):
    status = 400
    code = "bad_request"


class BadPath(RequestError):
    code = "bad_path"


class BadQuery(RequestError):
    code = "bad_query"


class NotFound(RequestError):
    status = 404
    code = "not_found"


class MethodNotAllowed(RequestError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(RequestError):
    status = 408
    code = "request_timeout"


class PayloadTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class UpstreamError(CachegateError):
    status = 502
    code = "bad_gateway"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "gateway_timeout"


class CacheUnavailable(CachegateError):
    status = 503
    code = "cache_unavailable"
