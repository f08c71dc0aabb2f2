"""Issue and verify the gateway's JWTs (python-jose), with the algorithm pinned to config.auth.algorithm.

Claims: `sub` (the user id as a string), `iat`, `exp`, `iss`. Verification refuses anything that is not
signed with the configured algorithm and key (`alg: none`, another key, a tampered payload), a missing or
past `exp` (beyond `leeway`) and a foreign issuer; every refusal is a 401 ApiError.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from jose import jwk, jwt
from jose.exceptions import JOSEError

from backends.common.errors import unauthorized
from proxy.config import AuthConfig


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in: int

    def as_json(self) -> dict[str, object]:
        return {"access_token": self.access_token, "token_type": "bearer", "expires_in": self.expires_in}


class TokenIssuer:
    """Signs tokens with the private key; only the users service holds one."""

    def __init__(self, auth: AuthConfig) -> None:
        self._algorithm = auth.algorithm
        self._issuer = auth.issuer
        self._ttl = int(auth.token_ttl)
        # Parse the PEM once: constructing a key per token costs more than signing it.
        self._key = jwk.construct(auth.private_key_pem(), auth.algorithm)

    def issue(self, user_id: int, *, now: float | None = None) -> Token:
        iat = int(time.time() if now is None else now)
        claims = {"sub": str(user_id), "iat": iat, "exp": iat + self._ttl, "iss": self._issuer}
        token = jwt.encode(claims, self._key, algorithm=self._algorithm)
        return Token(token, self._ttl)


class TokenVerifier:
    """Checks a token's signature and claims; returns the caller's user id."""

    def __init__(self, auth: AuthConfig) -> None:
        self._algorithm = auth.algorithm
        self._issuer = auth.issuer
        self._leeway = auth.leeway
        self._key = jwk.construct(auth.public_key_pem(), auth.algorithm)

    def verify(self, token: str) -> int:
        try:
            # Checked before decoding too, so that no header can pick its own algorithm.
            header = jwt.get_unverified_header(token)
            if header.get("alg") != self._algorithm:
                raise unauthorized("token algorithm not accepted", "invalid_token")
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                issuer=self._issuer,
                options={"require_exp": True, "require_iat": True, "require_sub": True,
                         "verify_aud": False, "leeway": self._leeway},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("token expired", "token_expired") from exc
        except JOSEError as exc:
            raise unauthorized("invalid token", "invalid_token") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.isdigit() or len(sub) > 18:
            raise unauthorized("invalid token subject", "invalid_token")
        return int(sub)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or a 401."""
    if not authorization:
        raise unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("expected an Authorization: Bearer token")
    return token.strip()

