"""One table of token rules, run against the gateway and against a service: the same token, the same verdict.

Each case builds a token for a given user from the signing key of the test world; `code` is the refusal the
rule must give (None: the token holds) and `heals` whether time alone could make the same token valid.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt

from cachegate.settings import AuthConfig

Make = Callable[[AuthConfig, int], str]


@dataclass(frozen=True)
class Case:
    name: str
    make: Make
    code: str | None     # None: accepted
    heals: bool = False


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class At:
    """A time relative to when the token is made (the table is built at import, long before)."""
    offset: int

    def value(self) -> int:
        return int(time.time()) + self.offset


def claims(auth: AuthConfig, user_id: int, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {"sub": str(user_id), "tv": 1, "iat": now, "exp": now + 600, "iss": auth.issuer, **changes}
    return {k: v.value() if isinstance(v, At) else v for k, v in body.items() if v is not None}


def signed(**changes: Any) -> Make:
    def make(auth: AuthConfig, user_id: int) -> str:
        return jwt.encode(claims(auth, user_id, **changes), auth.private_key_pem(), algorithm="ES256")
    return make


def _unsigned(auth: AuthConfig, user_id: int) -> str:
    payload = b64url(json.dumps(claims(auth, user_id)).encode())
    return b64url(b'{"alg":"none","typ":"JWT"}') + "." + payload + "."


def _hs256_with_public_key(auth: AuthConfig, user_id: int) -> str:
    payload = b64url(json.dumps(claims(auth, user_id)).encode())
    signing_input = b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + payload
    mac = hmac.new(auth.public_key_pem().encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _another_key(auth: AuthConfig, user_id: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return jwt.encode(claims(auth, user_id), key, algorithm="ES256")


def _tampered(auth: AuthConfig, user_id: int) -> str:
    head, _, signature = signed()(auth, user_id).split(".")
    return f"{head}.{b64url(json.dumps(claims(auth, user_id, tv=2)).encode())}.{signature}"


def _header_says_another_alg(auth: AuthConfig, user_id: int) -> str:
    """Signed with the right key and algorithm, but a header that claims ES384: refused before verifying."""
    return jwt.encode(claims(auth, user_id), auth.private_key_pem(), algorithm="ES256",
                      headers={"alg": "ES384"})


def _leading_zero(auth: AuthConfig, user_id: int) -> str:
    return signed(sub=f"00{user_id}")(auth, user_id)


def _sub_as_number(auth: AuthConfig, user_id: int) -> str:
    return signed(sub=user_id)(auth, user_id)


HOUR = 3600
# The test worlds run with auth.leeway 10s (config.yaml).
CASES = [
    Case("valid", signed(), None),
    Case("alg none", _unsigned, "invalid_token"),
    Case("HS256 keyed with the public key", _hs256_with_public_key, "invalid_token"),
    Case("another signing key", _another_key, "invalid_token"),
    Case("tampered payload", _tampered, "invalid_token"),
    Case("header names another alg", _header_says_another_alg, "invalid_token"),
    Case("no exp", signed(exp=None), "invalid_token"),
    Case("no iat", signed(iat=None), "invalid_token"),
    Case("no sub", signed(sub=None), "invalid_token"),
    Case("no iss", signed(iss=None), "invalid_token"),
    Case("no tv", signed(tv=None), "invalid_token"),
    Case("foreign iss", signed(iss="someone-else"), "invalid_token"),
    Case("expired beyond the leeway", signed(iat=At(-HOUR), exp=At(-60)), "token_expired"),
    Case("expired within the leeway", signed(iat=At(-HOUR), exp=At(-2)), None),
    Case("iat in the future beyond the leeway", signed(iat=At(120)), "token_not_yet_valid", heals=True),
    Case("iat in the future within the leeway", signed(iat=At(2)), None),
    Case("nbf in the future", signed(nbf=At(120)), "token_not_yet_valid", heals=True),
    Case("nbf passed", signed(nbf=At(-5)), None),
    Case("sub not an id", signed(sub="admin"), "invalid_token"),
    Case("sub with a leading zero", _leading_zero, "invalid_token"),
    Case("sub zero", signed(sub="0"), "invalid_token"),
    Case("sub negative", signed(sub="-1"), "invalid_token"),
    Case("sub of 19 digits", signed(sub="1" * 19), "invalid_token"),
    Case("sub a number, not a string", _sub_as_number, "invalid_token"),
    Case("tv zero", signed(tv=0), "invalid_token"),
    Case("tv a string", signed(tv="1"), "invalid_token"),
    Case("tv a bool", signed(tv=True), "invalid_token"),
    Case("tv too large", signed(tv=2**32), "invalid_token"),
    Case("exp a string", signed(exp="9999999999"), "invalid_token"),
    Case("garbage", lambda auth, user_id: "a.b.c", "invalid_token"),
    Case("not ASCII", lambda auth, user_id: signed()(auth, user_id) + "é", "invalid_token"),
]
