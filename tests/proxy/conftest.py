"""An ES256 key pair and the auth settings over it, for the token tests of this folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from cachegate.settings import AuthConfig
from stack.keys import ensure_jwt_keys


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuthConfig, str]:
    """(the auth settings, the private key's PEM); tests/proxy/test_auth.py has its own, with a second key."""
    folder: Path = tmp_path_factory.mktemp("keys")
    ensure_jwt_keys(folder / "a.pem", folder / "a.pub")
    cfg = AuthConfig("ES256", "cachegate", folder / "a.pub", folder / "a.pem", 900, 5, "users", "/auth/token")
    return cfg, (folder / "a.pem").read_text()
