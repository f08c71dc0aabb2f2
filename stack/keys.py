"""Generated secrets of the local stack: the ES256 key pair for tokens, random passwords and tokens."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only; O_EXCL so an existing secret is never overwritten."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_jwt_keys(private_path: Path, public_path: Path) -> None:
    """Create an ES256 (P-256) key pair as PEM files unless the private key exists.

    A missing public key is derived again from the private one.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.exists():
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        _write_private(private_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{private_path}: not a P-256 private key (ES256 needs one)")
    if not public_path.exists():
        public_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        public_path.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def ensure_secret(path: Path, nbytes: int = 24) -> str:
    """Return the secret stored at `path`, creating a random URL-safe one (mode 0600) when absent."""
    path = Path(path)
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(nbytes).encode() + b"\n")
    return path.read_text().strip()
