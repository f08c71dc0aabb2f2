"""The one set of token rules, for the gateway and the services alike: what a token claims and when it holds.

A token is a JWT signed with `auth.algorithm` (the header's `alg` is checked before anything else) and
claims `sub` (a user id: 1..18 decimal digits, no leading zero), `tv` (that user's token version when it
was issued), `iat`, `exp` and `iss`; `nbf` is honoured when present. `auth.leeway` applies to `exp`, `nbf`
and `iat` (which may not lie in the future beyond it). Every refusal is a TokenRefused (401); `heals`
says whether time alone can make the same token valid (not yet valid: `nbf` or `iat` ahead).

The users service announces revoked tokens on the answer to the change that revoked them, in the
`Cachegate-Revoked-Tokens` header: `user=<id>; below=<version>` means every token of that user whose
`tv` is lower is void. The gateway consumes the header and never passes it on.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from jose import jwk, jwt
from jose.exceptions import JOSEError

from cachegate.errors import AuthError
from cachegate.settings import AuthConfig

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cachegate"'}
REVOCATION_HEADER = "Cachegate-Revoked-Tokens"
MAX_TOKEN_VERSION = 2**32 - 1   # the users.token_version column is INT UNSIGNED
MAX_TOKEN_LENGTH = 8192         # ours are ~300 bytes; a longer one is refused before it is parsed
_SUB = re.compile(r"[1-9][0-9]{0,17}")
_REVOCATION = re.compile(r"user=([1-9][0-9]{0,17}); below=([1-9][0-9]{0,9})")
_REQUIRED = ("sub", "tv", "iat", "exp", "iss")


class TokenRefused(AuthError):
    """A Bearer token that does not hold; `code` is one of invalid_token, token_expired,
    token_not_yet_valid, token_revoked."""

    def __init__(self, message: str, *, code: str = "invalid_token", heals: bool = False) -> None:
        super().__init__(message, headers=CHALLENGE)
        self.code = code
        self.heals = heals


@dataclass(frozen=True, slots=True)
class Claims:
    """What a valid token says."""
    sub: str              # the user id as the token spells it (canonical: no sign, no leading zero)
    user_id: int
    token_version: int
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    expires_in: int

    def as_json(self) -> dict[str, object]:
        return {"access_token": self.access_token, "token_type": "bearer", "expires_in": self.expires_in}


class TokenIssuer:
    """Signs tokens with the private key; only the users service holds one."""

    def __init__(self, auth: AuthConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._algorithm = auth.algorithm
        self._issuer = auth.issuer
        self._ttl = int(auth.token_ttl)
        self._clock = clock
        # Parse the PEM once: constructing a key per token costs more than signing it.
        self._key = jwk.construct(auth.private_key_pem(), auth.algorithm)

    def issue(self, user_id: int, token_version: int, *, now: float | None = None) -> Token:
        iat = int(self._clock() if now is None else now)
        claims = {"sub": str(user_id), "tv": token_version, "iat": iat, "exp": iat + self._ttl,
                  "iss": self._issuer}
        return Token(jwt.encode(claims, self._key, algorithm=self._algorithm), self._ttl)


class TokenRules:
    """Checks a token's signature and claims; used by the gateway's Authenticator and by every service."""

    def __init__(self, auth: AuthConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._algorithm = auth.algorithm
        self._issuer = auth.issuer
        self._leeway = auth.leeway
        self._clock = clock
        self._key = jwk.construct(auth.public_key_pem(), auth.algorithm)

    def check(self, token: str) -> Claims:
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise TokenRefused("invalid token: not a JWT of ours")
        try:
            # Before the signature: no header may choose its own algorithm (none, HS256 keyed with our
            # public key, ...), whatever the library would accept.
            if jwt.get_unverified_header(token).get("alg") != self._algorithm:
                raise TokenRefused("invalid token: algorithm not accepted")
            # Only the signature here; every claim is checked below, against one clock.
            claims = jwt.decode(token, self._key, algorithms=[self._algorithm], options={
                "verify_aud": False, "verify_iat": False, "verify_exp": False, "verify_nbf": False,
                "verify_iss": False, "verify_sub": False, "verify_jti": False, "verify_at_hash": False})
        except (JOSEError, ValueError, TypeError) as exc:  # jose lets a few foreign errors through
            raise TokenRefused(f"invalid token: {_reason(exc)}") from None
        return self._claims(claims)

    def _claims(self, claims: dict[str, Any]) -> Claims:
        missing = [name for name in _REQUIRED if name not in claims]
        if missing:
            raise TokenRefused(f"invalid token: missing claim(s) {', '.join(missing)}")
        sub, tv, iss = claims["sub"], claims["tv"], claims["iss"]
        if iss != self._issuer:
            raise TokenRefused("invalid token: foreign issuer")
        if not isinstance(sub, str) or not _SUB.fullmatch(sub):
            raise TokenRefused("invalid token: sub is not a user id")
        if not _integer(tv) or not 1 <= tv <= MAX_TOKEN_VERSION:
            raise TokenRefused("invalid token: tv is not a token version")
        iat, exp, nbf = claims["iat"], claims["exp"], claims.get("nbf")
        if not _time(iat) or not _time(exp) or (nbf is not None and not _time(nbf)):
            raise TokenRefused("invalid token: iat, exp and nbf are NumericDates")
        now = self._clock()
        if exp + self._leeway < now:
            raise TokenRefused("token expired", code="token_expired")
        if iat > now + self._leeway:
            raise TokenRefused("token not yet valid (iat)", code="token_not_yet_valid", heals=True)
        if nbf is not None and nbf > now + self._leeway:
            raise TokenRefused("token not yet valid (nbf)", code="token_not_yet_valid", heals=True)
        return Claims(sub, int(sub), tv, int(iat), int(exp))


def revoked() -> TokenRefused:
    return TokenRefused("token revoked: its user was deleted or changed its password", code="token_revoked")


def revocation_header(user_id: int, below: int) -> str:
    """The header value announcing that the user's tokens with a version below `below` are void."""
    return f"user={user_id}; below={below}"


def parse_revocation(value: str) -> tuple[str, int] | None:
    """(sub, below) of a revocation header value; None when it is not one."""
    m = _REVOCATION.fullmatch(value.strip())
    return (m.group(1), int(m.group(2))) if m else None


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time(value: Any) -> bool:
    # A NumericDate is a number (RFC 7519 2); bool is an int in Python, never in JSON.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 2**53


def _reason(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).rstrip(".").lower()[:120]
