"""Who is asking: Bearer JWTs verified here (pinned algorithm, exp required), Basic exchanged once for a token."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, NoReturn

from jose import jwt
from jose.exceptions import JOSEError

from proxy.config import AuthConfig
from proxy.errors import AuthError, UpstreamError

log = logging.getLogger("cachegate.auth")

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cachegate"'}
# A Basic exchange is renewed this long before its token expires, so a request never carries a token that dies
# on its way to the backend.
RENEW_BEFORE = 60.0
MAX_REMEMBERED = 50_000
# A token that failed verification fails again (signatures and exp do not heal), so the refusal is remembered:
# a flood of one bad token costs a dict lookup each, not a signature check.
MAX_REFUSED = 10_000


@dataclass(frozen=True, slots=True)
class Identity:
    sub: str
    token: str          # the Bearer token to forward (for Basic callers, the one the exchange gave)
    expires_at: float
    header: str         # "Bearer <token>", made once, forwarded on every request


# Sends Basic credentials to the users service; returns the issued token or raises AuthError / UpstreamError.
Exchange = Callable[[str], Awaitable[str]]


class Authenticator:
    """One per app. Verified tokens and exchanged credentials are remembered until shortly before they expire."""

    def __init__(self, config: AuthConfig, exchange: Exchange, *, clock: Callable[[], float] = time.time) -> None:
        self._algorithm = config.algorithm
        self._issuer = config.issuer
        self._leeway = config.leeway
        self._key = config.public_key_pem()
        self._exchange = exchange
        self._clock = clock
        self._verified: dict[str, Identity] = {}
        self._refused: dict[str, str] = {}
        self._exchanged: dict[bytes, Identity] = {}
        self._pending: dict[bytes, asyncio.Future[Identity]] = {}
        # Credentials are remembered under a keyed hash with a key that lives only in this process's memory,
        # so neither the credentials nor an offline-guessable digest of them is ever stored.
        self._hmac_key = os.urandom(32)

    async def authenticate(self, header: str | None) -> Identity:
        if not header:
            raise AuthError("missing Authorization header (expected Bearer <token> or Basic credentials)",
                            headers=CHALLENGE)
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and value:
            if not value.isascii():
                raise AuthError("invalid token: a JWT is ASCII", headers=CHALLENGE)
            return self.verify(value)
        if scheme == "basic" and value:
            return await self._basic(value)
        raise AuthError("unsupported Authorization header (expected Bearer <token> or Basic credentials)",
                        headers=CHALLENGE)

    def verify(self, token: str) -> Identity:
        now = self._clock()
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at > now:
                return known
            del self._verified[token]
        refused = self._refused.get(token)
        if refused is not None:
            raise AuthError(refused, headers=CHALLENGE)
        try:
            claims = jwt.decode(token, self._key, algorithms=[self._algorithm], issuer=self._issuer,
                                options={"require_exp": True, "require_sub": True, "leeway": self._leeway,
                                         "verify_aud": False})
        except (JOSEError, ValueError) as exc:  # python-jose lets UnicodeError through for non-ASCII input
            self._refuse(token, f"invalid token: {_reason(exc)}")
        sub, exp = claims.get("sub"), claims.get("exp")
        if not isinstance(sub, str) or not sub or not isinstance(exp, (int, float)):
            self._refuse(token, "invalid token: sub and exp are required")
        identity = Identity(sub=sub, token=token, expires_at=float(exp), header="Bearer " + token)
        self._remember(self._verified, token, identity)
        return identity

    def _refuse(self, token: str, reason: str) -> NoReturn:
        if "not yet valid" in reason:  # the one refusal that time can heal (nbf, iat in the future)
            raise AuthError(reason, headers=CHALLENGE)
        if len(self._refused) >= MAX_REFUSED:
            for old in list(self._refused)[: MAX_REFUSED // 10]:
                del self._refused[old]
        self._refused[token] = reason
        raise AuthError(reason, headers=CHALLENGE)

    async def _basic(self, credentials: str) -> Identity:
        slot = hmac.digest(self._hmac_key, credentials.encode(), hashlib.sha256)
        known = self._exchanged.get(slot)
        if known is not None and known.expires_at - RENEW_BEFORE > self._clock():
            return known
        pending = self._pending.get(slot)
        if pending is not None:  # the same credentials are being exchanged right now: share that answer
            return await asyncio.shield(pending)
        future: asyncio.Future[Identity] = asyncio.get_running_loop().create_future()
        self._pending[slot] = future
        try:
            token = await self._exchange(credentials)
            identity = self.verify(token)
            self._remember(self._exchanged, slot, identity)
            future.set_result(identity)
            return identity
        except (AuthError, UpstreamError) as exc:
            future.set_exception(exc)
            future.exception()  # marks it retrieved when nobody else waited
            raise
        finally:
            self._pending.pop(slot, None)

    def _remember(self, table: dict, key, identity: Identity) -> None:
        if len(table) >= MAX_REMEMBERED:
            # Drop the oldest tenth rather than one at a time: amortised, and expired ones go first in practice
            # because insertion order follows issue time.
            for stale in list(table)[: MAX_REMEMBERED // 10]:
                del table[stale]
        table[key] = identity


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "expired" in text.lower():
        return "token expired"
    return text.rstrip(".").lower()
