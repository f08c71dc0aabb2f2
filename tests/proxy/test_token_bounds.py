"""The token rules at their bounds: the longest token read, the highest token version (INT UNSIGNED)."""
from __future__ import annotations

import time

import pytest
from jose import jwt

from cachegate.tokens import TokenRefused, TokenRules


def _signed(key: str, **claims: object) -> str:
    now = int(time.time())
    body = {"sub": "7", "tv": 1, "iat": now, "exp": now + 600, "iss": "cachegate", **claims}
    return jwt.encode(body, key, algorithm="ES256")


def _of_length(key: str, length: int) -> str:
    """A valid token of exactly `length` characters: a padding claim, a header field to reach any length."""
    for kid in range(4):
        for pad in range(length * 3 // 4 - 300, length):  # base64: 4 characters per 3 bytes
            now = int(time.time())
            body = {"sub": "7", "tv": 1, "iat": now, "exp": now + 600, "iss": "cachegate", "pad": "x" * pad}
            token = jwt.encode(body, key, algorithm="ES256", headers={"kid": "k" * kid})
            if len(token) == length:
                return token
            if len(token) > length:
                break
    raise AssertionError(f"no token of {length} characters")


def test_the_longest_token_is_read_and_one_more_character_is_refused_unread(keys) -> None:
    cfg, private = keys
    rules = TokenRules(cfg)
    # 8192 characters: the bound the gateway and every service apply alike (a number here, not the constant,
    # so that a change of the bound shows as a change of this test).
    assert rules.check(_of_length(private, 8192)).sub == "7"
    with pytest.raises(TokenRefused, match="not a JWT of ours"):
        rules.check(_of_length(private, 8193))


def test_the_highest_token_version_is_the_columns(keys) -> None:
    cfg, private = keys
    rules = TokenRules(cfg)
    assert rules.check(_signed(private, tv=2**32 - 1)).token_version == 2**32 - 1
    assert rules.check(_signed(private, tv=2**31)).token_version == 2**31
    with pytest.raises(TokenRefused, match="tv is not a token version"):
        rules.check(_signed(private, tv=2**32))


def test_the_leeway_holds_to_the_second_at_both_ends(keys) -> None:
    cfg, private = keys  # leeway: 5 s
    now = 1_900_000_000
    rules = TokenRules(cfg, clock=lambda: float(now))
    edge = {"sub": "7", "tv": 1, "iss": "cachegate"}
    assert rules.check(jwt.encode({**edge, "iat": now + 5, "exp": now + 600}, private, algorithm="ES256"))
    assert rules.check(jwt.encode({**edge, "iat": now - 600, "exp": now - 5}, private, algorithm="ES256"))
    assert rules.check(jwt.encode({**edge, "iat": now, "nbf": now + 5, "exp": now + 600}, private,
                                  algorithm="ES256"))
    for late in ({"iat": now + 6, "exp": now + 600}, {"iat": now - 600, "exp": now - 6},
                 {"iat": now, "nbf": now + 6, "exp": now + 600}):
        with pytest.raises(TokenRefused):
            rules.check(jwt.encode({**edge, **late}, private, algorithm="ES256"))
