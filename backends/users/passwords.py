"""Password hashing with hashlib.scrypt, stored as one string that carries its parameters.

Format: `scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`. Hashing costs ~70 ms of CPU, so the async
helpers run it in a thread (hashlib releases the GIL) to keep the event loop serving.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import os

N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
_MAXMEM = 64 * 1024 * 1024
# Refuse parameters that would make one verification a denial of service.
_MAX_N = 2**17


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    salt = os.urandom(SALT_BYTES)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=_MAXMEM)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(key)])


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n_s, r_s, p_s, salt_s, key_s = stored.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt, expected = base64.b64decode(salt_s), base64.b64decode(key_s)
    except ValueError:
        return False
    if scheme != "scrypt" or not (1 < n <= _MAX_N and 0 < r <= 32 and 0 < p <= 16):
        return False
    try:
        key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=_MAXMEM)
    except ValueError:  # n not a power of two, or similar damage to the stored string
        return False
    return hmac.compare_digest(key, expected)


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, hash_password, password)


async def verify_password_async(password: str, stored: str | None) -> bool:
    """Verify in a thread; with no stored hash (unknown login) verify a dummy, so it takes as long."""
    loop = asyncio.get_running_loop()
    if stored is None:
        await loop.run_in_executor(None, verify_password, password, _dummy_hash())
        return False
    return await loop.run_in_executor(None, verify_password, password, stored)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(os.urandom(16).hex())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
