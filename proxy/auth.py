"""Who is asking: Bearer JWTs checked by cachegate.tokens and remembered until revoked; Basic traded once."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping, NoReturn

from multidict import CIMultiDict, CIMultiDictProxy

from cachegate.settings import AuthConfig
from cachegate.tokens import CHALLENGE, TokenRefused, TokenRules, revoked
from proxy.errors import AuthError, RequestError, UpstreamError
from proxy.upstream import Request, Upstream

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
    token_version: int
    expires_at: float
    header: str         # "Bearer <token>" (for Basic callers, the exchange's token), forwarded each request


class BasicExchange:
    """Basic credentials -> a token, from the users service's token endpoint (auth.exchange_upstream and
    auth.exchange_path), sent through this generation's Upstream. The credentials are never logged or kept."""

    def __init__(self, upstream: Upstream, name: str, path: str) -> None:
        self._upstream, self._name, self._path = upstream, name, path

    async def __call__(self, credentials: str) -> str:
        headers = CIMultiDict({"Authorization": f"Basic {credentials}"})
        response = await self._upstream.send(self._name, Request("POST", self._path, "", headers, b""))
        if response.status in (400, 401, 403):
            raise AuthError("invalid credentials", headers={"WWW-Authenticate": 'Basic realm="cachegate"'})
        if response.status != 200:
            raise UpstreamError(f"token exchange at {self._name} failed with status {response.status}")
        try:
            token = json.loads(response.body)["access_token"]
        except (ValueError, KeyError, TypeError):
            raise UpstreamError(f"token exchange at {self._name} gave no access_token") from None
        if not isinstance(token, str):
            raise UpstreamError(f"token exchange at {self._name} gave no access_token")
        return token


# Basic credentials -> the issued token, or AuthError / UpstreamError: a BasicExchange (a stand-in in tests).
Exchange = Callable[[str], Awaitable[str]]


def single_authorization(headers: CIMultiDictProxy[str]) -> str | None:
    """The request's one Authorization header (None without one); two are refused, since components that
    read the first and the last would disagree about who is asking."""
    values = headers.getall("Authorization", None)
    if values is None:
        return None
    if len(values) > 1:
        raise RequestError("more than one Authorization header; send exactly one")
    return values[0]


class Authenticator:
    """One per process (the token rules are the process's). Verified tokens and exchanged credentials are
    remembered until shortly before they expire; the exchange itself is the caller's generation's."""

    def __init__(self, config: AuthConfig, *, revoked: Mapping[str, int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._rules = TokenRules(config, clock=clock)
        # sub -> the lowest token version still valid (proxy.revocations keeps it current, in place)
        self._revoked: Mapping[str, int] = revoked if revoked is not None else {}
        self._clock = clock
        self._verified: dict[str, Identity] = {}
        self._refused: dict[str, tuple[str, str]] = {}  # token -> (message, code)
        self._exchanged: dict[bytes, Identity] = {}
        self._pending: dict[bytes, asyncio.Future[Identity]] = {}
        # Credentials are remembered under a keyed hash with a key that lives only in this process's memory,
        # so neither the credentials nor an offline-guessable digest of them is ever stored.
        self._hmac_key = os.urandom(32)

    async def authenticate(self, header: str | None, exchange: Exchange) -> Identity:
        if not header:
            raise AuthError("missing Authorization header (expected Bearer <token> or Basic credentials)",
                            headers=CHALLENGE)
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and value:
            return self.verify(value)
        if scheme == "basic" and value:
            return await self._basic(value, exchange)
        raise AuthError("unsupported Authorization header (expected Bearer <token> or Basic credentials)",
                        headers=CHALLENGE)

    def verify(self, token: str) -> Identity:
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at > self._clock():
                # The memo holds tokens that were valid when checked: a revocation since then must still win.
                below = self._revoked.get(known.sub)
                if below is not None and known.token_version < below:
                    raise revoked()
                return known
            del self._verified[token]
        refused = self._refused.get(token)
        if refused is not None:
            raise TokenRefused(refused[0], code=refused[1])  # a fresh one: a raised one keeps its frames
        try:
            claims = self._rules.check(token)
        except TokenRefused as exc:
            self._refuse(token, exc)
        identity = Identity(sub=claims.sub, token_version=claims.token_version,
                            expires_at=float(claims.expires_at), header="Bearer " + token)
        self._remember(self._verified, token, identity)
        if self.is_revoked(identity):
            raise revoked()
        return identity

    def is_revoked(self, identity: Identity) -> bool:
        below = self._revoked.get(identity.sub)
        return below is not None and identity.token_version < below

    def _refuse(self, token: str, refusal: TokenRefused) -> NoReturn:
        if refusal.heals:  # not yet valid (nbf, iat ahead): time alone can make the same token good
            raise refusal
        if len(self._refused) >= MAX_REFUSED:
            for old in list(self._refused)[: MAX_REFUSED // 10]:
                del self._refused[old]
        self._refused[token] = (refusal.message, refusal.code)
        raise refusal

    async def _basic(self, credentials: str, exchange: Exchange) -> Identity:
        slot = hmac.digest(self._hmac_key, credentials.encode(), hashlib.sha256)
        known = self._exchanged.get(slot)
        fresh = known is not None and known.expires_at - RENEW_BEFORE > self._clock()
        if fresh and not self.is_revoked(known):
            return known  # a revoked one is exchanged again: a new password gives a token that holds
        pending = self._pending.get(slot)
        if pending is not None:  # the same credentials are being exchanged right now: share that answer
            return await asyncio.shield(pending)
        future: asyncio.Future[Identity] = asyncio.get_running_loop().create_future()
        self._pending[slot] = future
        try:
            token = await exchange(credentials)
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
            # Drop the oldest tenth rather than one at a time: amortised, and expired ones go first in
            # practice
            # because insertion order follows issue time.
            for stale in list(table)[: MAX_REMEMBERED // 10]:
                del table[stale]
        table[key] = identity

