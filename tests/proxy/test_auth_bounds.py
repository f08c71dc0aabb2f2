"""The proxy's memory of tokens is bounded: past the bound the oldest tenth goes, the newest stays."""
from __future__ import annotations

import time

import pytest
from jose import jwt

import proxy.auth
from cachegate.settings import AuthConfig
from proxy.auth import Authenticator
from proxy.errors import AuthError


def _token(key: str, sub: int) -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(sub), "tv": 1, "iat": now, "exp": now + 600, "iss": "cachegate"}, key,
                      algorithm="ES256")


def test_refused_tokens_are_remembered_up_to_the_bound(monkeypatch: pytest.MonkeyPatch,
                                                       keys: tuple[AuthConfig, str]) -> None:
    monkeypatch.setattr(proxy.auth, "MAX_REFUSED", 20)
    auth = Authenticator(keys[0])
    bad = [f"not-a-token-{i}" for i in range(21)]
    for token in bad[:20]:
        with pytest.raises(AuthError):
            auth.verify(token)
    assert list(auth._refused) == bad[:20]
    with pytest.raises(AuthError):
        auth.verify(bad[20])
    assert list(auth._refused) == bad[2:21]  # the oldest tenth (2) made room


def test_verified_tokens_are_remembered_up_to_the_bound(monkeypatch: pytest.MonkeyPatch,
                                                        keys: tuple[AuthConfig, str]) -> None:
    monkeypatch.setattr(proxy.auth, "MAX_REMEMBERED", 20)
    cfg, private = keys
    auth = Authenticator(cfg)
    good = [_token(private, sub) for sub in range(1, 22)]
    for token in good[:20]:
        assert auth.verify(token).sub
    assert list(auth._verified) == good[:20]
    auth.verify(good[20])
    assert list(auth._verified) == good[2:21]
