"""The services' side of the token rules: cachegate.tokens checks the token, the database says if it holds.

A token names a user and that user's token version when it was issued; deleting the user removes the row
and changing the password bumps `users.token_version`, so either voids every older token. The current
version of each user is read from the database and kept FRESH seconds per process: a change made through
another process is honoured within that bound, one made through this process at once (`forget`).
"""
from __future__ import annotations

import time
from typing import Callable

from backends.common import db
from backends.common.errors import ApiError, unauthorized
from cachegate.settings import AuthConfig
from cachegate.tokens import Claims, TokenRefused, TokenRules, revoked

FRESH = 1.0          # seconds a user's token version is trusted without asking the database again
MAX_USERS = 100_000  # users remembered at once per process


class TokenVerifier:
    """Checks a token's signature and claims (cachegate.tokens), as a 401 ApiError for the services."""

    def __init__(self, auth: AuthConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._rules = TokenRules(auth, clock=clock)

    def verify(self, token: str) -> Claims:
        try:
            return self._rules.check(token)
        except TokenRefused as exc:
            raise _as_api_error(exc) from None


class TokenVersions:
    """Each user's current token version (None: no such user), from the database, remembered briefly."""

    def __init__(self, *, fresh: float = FRESH, clock: Callable[[], float] = time.monotonic) -> None:
        self._fresh = fresh
        self._clock = clock
        self._known: dict[int, tuple[int | None, float]] = {}  # user id -> (version, read at)

    async def check(self, pool: db.Database, claims: Claims) -> None:
        """A 401 unless the token's user exists and its token version is the token's."""
        if await self.current(pool, claims.user_id) != claims.token_version:
            raise _as_api_error(revoked())

    async def current(self, pool: db.Database, user_id: int) -> int | None:
        now = self._clock()
        known = self._known.get(user_id)
        if known is not None and now - known[1] < self._fresh:
            return known[0]
        row = await db.fetch_one(pool, "SELECT token_version FROM users WHERE id = %s", (user_id,))
        version = None if row is None else int(row["token_version"])
        if len(self._known) >= MAX_USERS:
            for old in list(self._known)[: MAX_USERS // 10]:  # the oldest tenth: amortised, never a scan each
                del self._known[old]
        self._known.pop(user_id, None)  # re-inserted last, so eviction order follows the time of reading
        self._known[user_id] = (version, now)
        return version

    def forget(self, user_id: int) -> None:
        """This process changed the user's token version: the next request reads it again."""
        self._known.pop(user_id, None)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or a 401."""
    if not authorization:
        raise unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("expected an Authorization: Bearer token")
    return token.strip()


def _as_api_error(exc: TokenRefused) -> ApiError:
    return unauthorized(exc.message, exc.code)
