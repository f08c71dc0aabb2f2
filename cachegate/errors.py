"""The root of every error of ours, the config error, and a refused credential: what the kernel raises.

The proxy draws its whole tree in proxy/errors.py; the services map these onto their own ApiError.
"""
from __future__ import annotations


class CachegateError(Exception):
    """Base: `.status` and `.code` say how it is answered, `.message` is safe to show a client."""
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class ConfigError(CachegateError):
    """A bad config.yaml (or environment): refused at start and at reload, each message naming its place."""
    code = "bad_config"


class AuthError(CachegateError):
    """Missing, malformed, expired or badly signed credentials."""
    status = 401
    code = "unauthorized"
