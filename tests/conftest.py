"""Real-server fixtures: Redis and MariaDB as plain processes on free ports, and configs pointing at them."""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Callable, Iterator

import pytest

from cachegate.config import Config
from stack.keys import ensure_jwt_keys, ensure_secret
from stack.mariadb import MariaDBServer
from stack.net import free_port
from stack.redis import RedisServer
from stack.redis_cluster import RedisCluster
from tests.support.configs import TEST_CDC_USER, ConfigBuilder, TestSecrets
from tests.support.redisclients import cluster_denials, gateway_denials


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory,
                 test_secrets: TestSecrets) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), "127.0.0.1", free_port(),
                         users=test_secrets.redis_users)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory,
                  test_secrets: TestSecrets) -> Iterator[RedisCluster]:
    """One Redis Cluster for the whole session (3 masters, 3 replicas, free ports): the store's and the
    strategies' contract tests run on it as on the single Redis. A test that kills a node starts it again
    (`start()` rejoins it) before it ends."""
    cluster = RedisCluster(tmp_path_factory.mktemp("rcluster"), "127.0.0.1", [free_port() for _ in range(6)],
                           replicas=1, users=test_secrets.redis_users,
                           bus_ports=[free_port() for _ in range(6)])
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _gateway_user_was_never_refused(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the session Redis (or cluster): no refusal of the gateway's user logged."""
    yield
    denied: list[str] = []
    if "redis_server" in request.fixturenames:
        denied += gateway_denials(request.getfixturevalue("redis_server"))
    if "redis_cluster" in request.fixturenames:
        denied += cluster_denials(request.getfixturevalue("redis_cluster"))
    assert not denied, f"the gateway's Redis user was refused: {denied} (see stack/redis_acl.py)"


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory,
                   test_secrets: TestSecrets) -> Iterator[MariaDBServer]:
    server = MariaDBServer(tmp_path_factory.mktemp("mariadb"), "127.0.0.1", free_port())
    server.start()
    server.ensure_replication_user(TEST_CDC_USER, test_secrets.cdc_password_file.read_text().strip())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_secrets(tmp_path_factory: pytest.TempPathFactory) -> TestSecrets:
    folder = tmp_path_factory.mktemp("secrets")
    found = TestSecrets(folder / "jwt-private.pem", folder / "jwt-public.pem", folder / "db-password",
                        folder / "redis-password", folder / "redis-admin-password", folder / "admin-token",
                        folder / "cdc-password")
    ensure_jwt_keys(found.jwt_private, found.jwt_public)
    for path in (found.db_password_file, found.redis_password_file, found.redis_admin_password_file,
                 found.admin_token_file, found.cdc_password_file):
        ensure_secret(path)
    return found


@pytest.fixture
def redis_factory(tmp_path: Path, test_secrets: TestSecrets) -> Iterator[Callable[..., RedisServer]]:
    """A private, started RedisServer per call, for tests that kill or pause it; stopped after the test.

    It has the session server's users, so a config or client made for one reaches the other too.
    """
    made: list[RedisServer] = []

    def factory(*, start: bool = True) -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(made)}", "127.0.0.1", free_port(),
                             users=test_secrets.redis_users)
        made.append(server)
        if start:
            server.start()
        return server

    yield factory
    denied = [d for server in made for d in gateway_denials(server)]
    for server in reversed(made):
        server.stop()
    assert not denied, f"the gateway's Redis user was refused: {denied} (see stack/redis_acl.py)"


@pytest.fixture
def make_config(tmp_path: Path, redis_server: RedisServer, mariadb_server: MariaDBServer,
                test_secrets: TestSecrets) -> ConfigBuilder:
    return ConfigBuilder(tmp_path, redis_server, mariadb_server, test_secrets)


@pytest.fixture
async def db_config(make_config: ConfigBuilder) -> AsyncIterator[Config]:
    """A config whose fresh database has every migration applied."""
    from backends.migrate import migrate
    config = make_config()
    await migrate(config)
    yield config
