"""Tokens at the proxy: cachegate/tokens.py's rules, remembered verifications, revocations, Basic once."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from pathlib import Path

import pytest
from jose import jwt
from multidict import CIMultiDict, CIMultiDictProxy

from cachegate.settings import AuthConfig
from proxy.auth import Authenticator, single_authorization
from proxy.errors import AuthError, RequestError
from stack.keys import ensure_jwt_keys
from tests.support.polling import poll
from tests.support.token_cases import CASES


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[AuthConfig, str, str]:
    folder: Path = tmp_path_factory.mktemp("keys")
    ensure_jwt_keys(folder / "a.pem", folder / "a.pub")
    ensure_jwt_keys(folder / "b.pem", folder / "b.pub")
    cfg = AuthConfig("ES256", "cachegate", folder / "a.pub", folder / "a.pem", 900, 5, "users", "/auth/token")
    return cfg, (folder / "a.pem").read_text(), (folder / "b.pem").read_text()


def token(key: str, **claims) -> str:
    now = int(time.time())
    body = {"sub": "7", "tv": 1, "iat": now, "exp": now + 600, "iss": "cachegate", **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="ES256")


async def refuse(auth: Authenticator, header: str | None, code: str | None = None) -> str:
    with pytest.raises(AuthError) as info:
        await auth.authenticate(header, no_exchange)
    assert info.value.status == 401 and "WWW-Authenticate" in info.value.headers
    if code is not None:
        assert info.value.code == code, info.value.message
    return info.value.message


async def no_exchange(credentials: str) -> str:
    raise AssertionError("no exchange expected")


async def test_valid_token(keys):
    cfg, private, _ = keys
    identity = await Authenticator(cfg).authenticate("Bearer " + token(private), no_exchange)
    assert identity.sub == "7"


async def test_bad_tokens_are_refused(keys):
    cfg, private, other = keys
    auth = Authenticator(cfg)
    assert "expired" in await refuse(auth, "Bearer " + token(private, exp=int(time.time()) - 60))
    await refuse(auth, "Bearer " + token(other))                      # signed by another key
    await refuse(auth, "Bearer " + token(private, iss="someone-else"))
    await refuse(auth, "Bearer " + token(private, exp=None))          # exp is required
    await refuse(auth, "Bearer " + token(private, sub=None))
    await refuse(auth, None)
    await refuse(auth, "Bearer ")
    await refuse(auth, "Digest abc")
    head, payload, sig = token(private).split(".")
    forged = base64.urlsafe_b64encode(b'{"sub":"1","exp":9999999999,"iss":"cachegate"}').rstrip(b"=").decode()
    await refuse(auth, f"Bearer {head}.{forged}.{sig}")                 # tampered payload
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    await refuse(auth, f"Bearer {none_head}.{payload}.")                # alg: none
    # algorithm confusion: HS256 "signed" with the public key as the HMAC secret
    hs_head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    mac = hmac.digest(cfg.public_key.read_bytes(), f"{hs_head}.{payload}".encode(), hashlib.sha256)
    await refuse(auth, f"Bearer {hs_head}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}")


async def test_verification_is_remembered_only_until_exp(keys, monkeypatch):
    """On the real clock (the one the token rules use too): a token 2 s from its exp, no leeway."""
    cfg, private, _ = keys
    strict = AuthConfig(cfg.algorithm, cfg.issuer, cfg.public_key, cfg.private_key, cfg.token_ttl, 0,
                        cfg.exchange_upstream, cfg.exchange_path)
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr("cachegate.tokens.jwt.decode",
                        lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    auth = Authenticator(strict)
    exp = int(time.time()) + 2
    t = token(private, exp=exp)
    for _ in range(3):
        assert (await auth.authenticate("Bearer " + t, no_exchange)).sub == "7"
    assert len(decoded) == 1   # a repeated token does not pay the verification again

    async def past_exp() -> bool:
        return time.time() > exp + 0.1
    assert await poll(past_exp, 30), "the clock never passed exp"
    assert await refuse(auth, "Bearer " + t, "token_expired") == "token expired"
    assert len(decoded) == 2   # the remembered verification no longer counted: checked again, refused


async def test_basic_is_exchanged_once_and_credentials_not_kept(keys):
    cfg, private, _ = keys
    calls: list[str] = []

    async def exchange(credentials: str) -> str:
        calls.append(credentials)
        await asyncio.sleep(0.01)
        return token(private)

    auth = Authenticator(cfg)
    creds = base64.b64encode(b"alice:s3cret-password").decode()
    results = await asyncio.gather(*(auth.authenticate("Basic " + creds, exchange) for _ in range(20)))
    assert {r.sub for r in results} == {"7"}
    assert len(calls) == 1  # concurrent callers shared one exchange, later ones reuse the token
    await auth.authenticate("Basic " + creds, exchange)
    assert len(calls) == 1
    remembered = repr(auth._exchanged) + repr(list(auth._exchanged))
    assert creds not in remembered and "s3cret" not in remembered


async def test_basic_bad_credentials_are_not_remembered(keys):
    cfg, private, _ = keys
    calls = 0

    async def exchange(credentials: str) -> str:
        nonlocal calls
        calls += 1
        raise AuthError("invalid credentials")

    auth = Authenticator(cfg)
    for _ in range(2):
        with pytest.raises(AuthError):
            await auth.authenticate("Basic " + base64.b64encode(b"a:b").decode(), exchange)
    assert calls == 2


async def test_a_refused_token_is_not_verified_again(keys, monkeypatch):
    cfg, _, other = keys
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr("cachegate.tokens.jwt.decode",
                        lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    auth = Authenticator(cfg)
    bad = "Bearer " + token(other)
    first = await refuse(auth, bad)
    for _ in range(5):
        assert await refuse(auth, bad) == first
    assert len(decoded) == 1


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_every_token_rule(keys, case, monkeypatch):
    cfg, _, _ = keys
    leeway10 = AuthConfig(cfg.algorithm, cfg.issuer, cfg.public_key, cfg.private_key, cfg.token_ttl, 10,
                          cfg.exchange_upstream, cfg.exchange_path)
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr("cachegate.tokens.jwt.decode",
                        lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    now = [time.time()]
    auth = Authenticator(leeway10, clock=lambda: now[0])
    token = case.make(leeway10, 7)
    if case.code is None:
        assert (await auth.authenticate("Bearer " + token, no_exchange)).sub == "7"
        return
    await refuse(auth, "Bearer " + token, case.code)
    checked = len(decoded)
    now[0] += 300  # what time heals is accepted now; what it cannot heal was remembered as refused
    if case.heals:
        assert (await auth.authenticate("Bearer " + token, no_exchange)).sub == "7"
    else:
        await refuse(auth, "Bearer " + token, case.code)
        assert len(decoded) == checked


async def test_a_revocation_wins_over_the_remembered_verification(keys):
    cfg, private, _ = keys
    revoked: dict[str, int] = {}
    auth = Authenticator(cfg, revoked=revoked)
    old, new = token(private, tv=1), token(private, tv=2)
    assert (await auth.authenticate("Bearer " + old, no_exchange)).sub == "7"   # remembered from here on
    revoked["7"] = 2                                                 # a password change: below 2 is void
    await refuse(auth, "Bearer " + old, "token_revoked")
    assert (await auth.authenticate("Bearer " + new, no_exchange)).token_version == 2
    other = await auth.authenticate("Bearer " + token(private, sub="8"), no_exchange)
    assert other.sub == "8"  # other users unaffected


async def test_a_revoked_basic_exchange_is_made_again(keys):
    cfg, private, _ = keys
    revoked: dict[str, int] = {}
    versions = iter([1, 2])

    async def exchange(credentials: str) -> str:
        return token(private, tv=next(versions))

    auth = Authenticator(cfg, revoked=revoked)
    basic = "Basic " + base64.b64encode(b"alice:s3cret-password").decode()
    assert (await auth.authenticate(basic, exchange)).token_version == 1
    revoked["7"] = 2
    again = await auth.authenticate(basic, exchange)
    assert again.token_version == 2  # exchanged again, not refused for good


def test_two_authorization_headers_are_refused():
    def headers(*values: str) -> CIMultiDictProxy[str]:
        return CIMultiDictProxy(CIMultiDict([("Authorization", v) for v in values]))

    assert single_authorization(headers()) is None
    assert single_authorization(headers("Bearer a")) == "Bearer a"
    for pair in (("Bearer a", "Bearer a"), ("Bearer a", "Basic b")):
        with pytest.raises(RequestError) as info:
            single_authorization(headers(*pair))
        assert info.value.status == 400
