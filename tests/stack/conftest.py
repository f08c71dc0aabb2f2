"""Fixtures of the launcher tests: a config for a whole stack of the test's own."""
from __future__ import annotations

import pytest

from stack import launcher
from stack.net import free_port


@pytest.fixture
def stack_config(make_config):
    """A config file with its own ports and data_dir, for a stack the test starts itself."""
    data_dir = make_config.tmp_path / "own-stack"
    config = make_config.file({
        # Its own Redis and MariaDB: up starts them, down stops them, the session's servers stay untouched.
        # Its own secrets too, which `up` must make: none of the session's files.
        "redis": {"url": f"redis://127.0.0.1:{free_port()}/0",
                  "password_file": str(data_dir / "secrets" / "redis-password")},
        "proxy": {"admin": {"token_file": str(data_dir / "secrets" / "admin-token")}},
        "mariadb": {"port": free_port()},
    })
    yield config
    launcher.down(config, say=lambda line: None)  # even when the test failed half-way
