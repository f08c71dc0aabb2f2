"""Generated secrets: the ES256 key pair and random tokens, private files, never overwritten."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest
from jose import jwt

from stack.keys import ensure_jwt_keys, ensure_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_jwt_keys_sign_and_verify_es256(tmp_path: Path) -> None:
    private, public = tmp_path / "s" / "jwt-private.pem", tmp_path / "s" / "jwt-public.pem"
    ensure_jwt_keys(private, public)
    assert mode(private) == 0o600
    token = jwt.encode({"sub": "1"}, private.read_text(), algorithm="ES256")
    assert jwt.decode(token, public.read_text(), algorithms=["ES256"]) == {"sub": "1"}


def test_jwt_keys_are_kept_when_present_and_a_lost_public_key_is_restored(tmp_path: Path) -> None:
    private, public = tmp_path / "jwt-private.pem", tmp_path / "jwt-public.pem"
    ensure_jwt_keys(private, public)
    first_private, first_public = private.read_bytes(), public.read_bytes()
    ensure_jwt_keys(private, public)
    assert private.read_bytes() == first_private and public.read_bytes() == first_public
    public.unlink()
    ensure_jwt_keys(private, public)
    assert public.read_bytes() == first_public


def test_jwt_keys_refuse_a_private_key_of_another_curve(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    private = tmp_path / "jwt-private.pem"
    private.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="P-256"):
        ensure_jwt_keys(private, tmp_path / "jwt-public.pem")


def test_secret_is_random_private_and_stable(tmp_path: Path) -> None:
    first = ensure_secret(tmp_path / "a")
    assert len(first) >= 24 and mode(tmp_path / "a") == 0o600
    assert ensure_secret(tmp_path / "a") == first
    assert ensure_secret(tmp_path / "b") != first
