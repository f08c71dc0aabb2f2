"""The token-attack suite: forged, expired, revoked and doubled credentials, on cached and uncached routes.

Every attack goes to a cached read (warmed first with a valid token, so a hit would be a way around
authentication), to `/users/me` and to a write; each must be refused with a 4xx JSON error. The forged
tokens are signed with the stack's own private key where the attack needs a valid signature (expired,
foreign issuer, missing claims), with another key, or with none.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt

from loadtest.reliability.rawhttp import Case

HOUR = 3600


@dataclass(frozen=True)
class Keys:
    """What forging needs: the stack's signing key and public key, its issuer and a victim's claims."""

    private_pem: str
    public_pem: str
    issuer: str
    user_id: int
    token_version: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(keys: Keys, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {"sub": str(keys.user_id), "tv": keys.token_version, "iat": now, "exp": now + 600,
            "iss": keys.issuer, **changes}
    return {k: v for k, v in body.items() if v is not None}


def _signed(keys: Keys, **changes: Any) -> str:
    return jwt.encode(_claims(keys, **changes), keys.private_pem, algorithm="ES256")


def forged(keys: Keys) -> dict[str, str]:
    """Name -> a token that must be refused (every one of them for the victim's own id)."""
    now = int(time.time())
    other_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    payload = _b64(json.dumps(_claims(keys)).encode())
    hs_input = _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + payload
    hs_mac = hmac.new(keys.public_pem.encode(), hs_input.encode(), hashlib.sha256).digest()
    head, _, signature = _signed(keys).split(".")
    tampered = _b64(json.dumps(_claims(keys, sub=str(keys.user_id + 1))).encode())
    return {
        "alg none": _b64(b'{"alg":"none","typ":"JWT"}') + "." + payload + ".",
        "HS256 keyed with the public key": f"{hs_input}.{_b64(hs_mac)}",
        "signed with a foreign key": jwt.encode(_claims(keys), other_key, algorithm="ES256"),
        "tampered payload (another sub)": f"{head}.{tampered}.{signature}",
        "header claims ES384": jwt.encode(_claims(keys), keys.private_pem, algorithm="ES256",
                                          headers={"alg": "ES384"}),
        "expired an hour ago": _signed(keys, iat=now - 2 * HOUR, exp=now - HOUR),
        "issued in the future": _signed(keys, iat=now + HOUR, exp=now + 2 * HOUR),
        "not valid before an hour from now": _signed(keys, nbf=now + HOUR),
        "no exp": _signed(keys, exp=None),
        "foreign issuer": _signed(keys, iss="someone-else"),
        "sub not an id": _signed(keys, sub="admin"),
        "token version 0": _signed(keys, tv=0),
        "garbage": "a.b.c",
        "5,000 characters": "x" * 5000,
    }


def cases(*, keys: Keys, valid: str, other_id: int, revoked: dict[str, tuple[int, str]]) -> list[Case]:
    """Each attack on three targets; `revoked` maps a name to (user id, its revoked Bearer value)."""
    victim = keys.user_id
    json_type = ("Content-Type", "application/json")
    body = b'{"title": "attacker"}'

    def on_targets(kind: str, name: str, headers: tuple[tuple[str, str], ...], user_id: int,
                   expect: tuple[int, ...] = (401,)) -> list[Case]:
        return [Case(kind, f"{name}: GET /users/{{id}} (cached)", "GET", f"/users/{other_id}", headers,
                     None, expect),
                Case(kind, f"{name}: GET /users/me", "GET", "/users/me", headers, None, expect),
                Case(kind, f"{name}: PATCH /users/{{own id}}", "PATCH", f"/users/{user_id}",
                     headers + (json_type,), body, expect)]

    out: list[Case] = []
    out += on_targets("missing", "no Authorization", (), victim)
    out += on_targets("malformed", "empty Bearer", (("Authorization", "Bearer "),), victim, (400, 401))
    out += on_targets("malformed", "unknown scheme", (("Authorization", "Digest abc"),), victim, (400, 401))
    out += on_targets("malformed", "Basic not base64", (("Authorization", "Basic !!!"),), victim, (400, 401))
    out += on_targets("wrong-password", "Basic with a wrong password",
                      (("Authorization", "Basic " + base64.b64encode(b"user000001:wrong").decode()),),
                      victim)
    for name, token in forged(keys).items():
        out += on_targets("forged", name, (("Authorization", f"Bearer {token}"),), victim)
    for name, (user_id, bearer) in revoked.items():
        out += on_targets("revoked", name, (("Authorization", bearer),), user_id)
    out += on_targets("duplicate-authorization", "two valid Bearer headers",
                      (("Authorization", valid), ("Authorization", valid)), victim, (400,))
    out += on_targets("duplicate-authorization", "valid Bearer and garbage",
                      (("Authorization", valid), ("Authorization", "Bearer a.b.c")), victim, (400,))
    out.append(Case("cross-user", "PATCH another user with a valid token", "PATCH", f"/users/{other_id}",
                    (("Authorization", valid), json_type), body, (403,)))
    out.append(Case("cross-user", "DELETE another user with a valid token", "DELETE", f"/users/{other_id}",
                    (("Authorization", valid),), None, (403,)))
    return out
