"""Tokens: what the users service issues is accepted everywhere; forged, altered or expired ones are 401."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt

from backends.common.errors import ApiError
from backends.common.tokens import TokenIssuer, TokenVerifier
from service_helpers import error_of


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_for(user_id: int, config, **changes) -> dict:
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + 600, "iss": config.auth.issuer}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def other_private_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def forged_tokens(user_id: int, config, valid: str) -> dict[str, str]:
    header, payload, signature = valid.split(".")
    claims = claims_for(user_id, config)
    tampered = b64url(json.dumps({**json.loads(base64.urlsafe_b64decode(payload + "==")),
                                  "sub": str(user_id + 1)}).encode())
    unsigned = b64url(b'{"alg":"none","typ":"JWT"}') + "." + b64url(json.dumps(claims).encode())
    # The classic confusion: HMAC "signed" with the public key a verifier holds.
    hs_input = b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + b64url(json.dumps(claims).encode())
    public = config.auth.public_key_pem().encode()
    hs_sig = b64url(hmac.new(public, hs_input.encode(), hashlib.sha256).digest())
    private = config.auth.private_key_pem()
    return {
        "tampered payload": f"{header}.{tampered}.{signature}",
        "alg none": unsigned + ".",
        "alg none, no dot": unsigned,
        "hs256 with the public key": f"{hs_input}.{hs_sig}",
        "another key": jwt.encode(claims, other_private_pem(), algorithm="ES256"),
        "expired": jwt.encode(claims_for(user_id, config, iat=1_000_000, exp=1_000_600), private,
                              algorithm="ES256"),
        "no exp": jwt.encode(claims_for(user_id, config, exp=None), private, algorithm="ES256"),
        "foreign issuer": jwt.encode(claims_for(user_id, config, iss="evil"), private, algorithm="ES256"),
        "no sub": jwt.encode(claims_for(user_id, config, sub=None), private, algorithm="ES256"),
        "sub not an id": jwt.encode(claims_for(user_id, config, sub="admin"), private, algorithm="ES256"),
        "garbage": "a.b.c",
        "empty signature": f"{header}.{payload}.",
    }


async def test_forged_altered_and_expired_tokens_are_401(users, account, db_config):
    for name, token in forged_tokens(account.id, db_config, account.token).items():
        resp = await users.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        code = await error_of(resp, 401)
        assert code == ("token_expired" if name == "expired" else "invalid_token"), name
    # The genuine token still works, so the refusals above are about the tokens.
    assert (await users.get("/users/me", headers=account.headers)).status == 200


async def test_other_services_accept_the_users_token_and_refuse_forgeries(paths, trips, account, db_config):
    forged = forged_tokens(account.id, db_config, account.token)["another key"]
    for client, path in ((paths, "/paths/1"), (trips, "/trips/1")):
        assert (await client.get(path, headers=account.headers)).status == 404  # authenticated; no such row
        resp = await client.get(path, headers={"Authorization": f"Bearer {forged}"})
        assert await error_of(resp, 401) == "invalid_token"
        assert await error_of(await client.get(path), 401) == "unauthorized"
        resp = await client.get(path, headers={"Authorization": f"Basic {account.token}"})
        assert await error_of(resp, 401) == "unauthorized"


def test_issued_claims_and_leeway(make_config):
    config = make_config({"auth": {"leeway": "60s", "token_ttl": "5m"}})
    issuer, verifier = TokenIssuer(config.auth), TokenVerifier(config.auth)
    token = issuer.issue(42)
    assert token.expires_in == 300
    claims = jwt.get_unverified_claims(token.access_token)
    assert claims["sub"] == "42" and claims["iss"] == config.auth.issuer
    assert claims["exp"] - claims["iat"] == 300
    assert jwt.get_unverified_header(token.access_token)["alg"] == "ES256"
    assert verifier.verify(token.access_token) == 42
    # Expired 30 s ago: inside the 60 s leeway. Expired 10 minutes ago: refused.
    assert verifier.verify(issuer.issue(42, now=time.time() - 330).access_token) == 42
    with pytest.raises(ApiError) as refused:
        verifier.verify(issuer.issue(42, now=time.time() - 900).access_token)
    assert refused.value.status == 401 and refused.value.code == "token_expired"
