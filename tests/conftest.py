"""Real-server fixtures: Redis and MariaDB as plain processes on free ports, and configs pointing at them."""
from __future__ import annotations

import copy
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
# pytest puts tests/ on sys.path, and tests/proxy, tests/strategies, tests/stack, ... have no __init__.py.
# Found first, they would shadow the real packages as empty namespace packages (the editable install's
# finder comes after sys.path), so strategies/__init__.py would never register the built-in strategies.
# The repository root must come first.
if sys.path[:1] != [str(REPO)]:
    sys.path.insert(0, str(REPO))

import pytest  # noqa: E402
import yaml  # noqa: E402
from redisclients import gateway_denials  # noqa: E402

from stack.keys import ensure_jwt_keys, ensure_secret  # noqa: E402
from stack.mariadb import MariaDBServer  # noqa: E402
from stack.net import free_port  # noqa: E402
from stack.redis import RedisServer  # noqa: E402
from stack.redis_acl import RedisUsers  # noqa: E402

if TYPE_CHECKING:
    from proxy.config import Config
TEST_DB_USER = "cachegate_test"
TEST_REDIS_USER = "cachegate"


@dataclass(frozen=True)
class TestSecrets:
    """Secrets made once per session: the JWT key pair, the database, Redis and admin passwords."""
    __test__ = False  # not a test class, despite the name

    jwt_private: Path
    jwt_public: Path
    db_password_file: Path
    redis_password_file: Path
    redis_admin_password_file: Path
    admin_token_file: Path

    @property
    def db_password(self) -> str:
        return self.db_password_file.read_text().strip()

    @property
    def redis_users(self) -> RedisUsers:
        """The users every test Redis runs with: the gateway's (what the code under test uses), the admin."""
        return RedisUsers(TEST_REDIS_USER, self.redis_password_file.read_text().strip(),
                          self.redis_admin_password_file.read_text().strip())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory,
                 test_secrets: TestSecrets) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), "127.0.0.1", free_port(),
                         users=test_secrets.redis_users)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _gateway_user_was_never_refused(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the session Redis: its ACL LOG holds no refusal of the gateway's user."""
    yield
    if "redis_server" in request.fixturenames:
        denied = gateway_denials(request.getfixturevalue("redis_server"))
        assert not denied, f"the gateway's Redis user was refused: {denied} (see stack/redis_acl.py)"


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    server = MariaDBServer(tmp_path_factory.mktemp("mariadb"), "127.0.0.1", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_secrets(tmp_path_factory: pytest.TempPathFactory) -> TestSecrets:
    folder = tmp_path_factory.mktemp("secrets")
    found = TestSecrets(folder / "jwt-private.pem", folder / "jwt-public.pem", folder / "db-password",
                        folder / "redis-password", folder / "redis-admin-password", folder / "admin-token")
    ensure_jwt_keys(found.jwt_private, found.jwt_public)
    for path in (found.db_password_file, found.redis_password_file, found.redis_admin_password_file,
                 found.admin_token_file):
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


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `overrides` merged in: mappings recursively, anything else (lists) replaced."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class ConfigBuilder:
    """Configs from the repo's config.yaml pointing at the test world, one fresh database per call."""

    def __init__(self, tmp_path: Path, redis: RedisServer, mariadb: MariaDBServer,
                 secrets: TestSecrets) -> None:
        self.tmp_path = tmp_path
        self.redis = redis
        self.mariadb = mariadb
        self.secrets = secrets
        self.calls = 0

    def mapping(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The config as a dict; creates its database and its folder as a side effect."""
        self.calls += 1
        unique = uuid.uuid4().hex[:10]
        database = f"t_{unique}"
        self.mariadb.ensure_database(database, TEST_DB_USER, self.secrets.db_password)
        data_dir = self.tmp_path / f"stack{self.calls}"
        data_dir.mkdir(parents=True, exist_ok=True)
        services = {name: {"host": "127.0.0.1", "port": free_port()} for name in ("users", "paths", "trips")}
        world = {
            "stack": {"data_dir": str(data_dir)},
            "proxy": {"host": "127.0.0.1", "port": free_port(),
                      "admin": {"host": "127.0.0.1", "port": free_port(),
                                "token_file": str(self.secrets.admin_token_file)}},
            "redis": {"url": self.redis.url, "username": TEST_REDIS_USER,
                      "password_file": str(self.secrets.redis_password_file)},
            "mariadb": {"host": self.mariadb.host, "port": self.mariadb.port, "database": database,
                        "user": TEST_DB_USER, "password_file": str(self.secrets.db_password_file)},
            "auth": {"public_key": str(self.secrets.jwt_public),
                     "private_key": str(self.secrets.jwt_private)},
            # A prefix of its own per config, so tests sharing the session Redis never see each other's keys.
            "cache": {"prefix": f"t{unique}"},
            "services": services,
            "upstreams": {name: f"http://{s['host']}:{s['port']}" for name, s in services.items()},
        }
        base = yaml.safe_load((REPO / "config.yaml").read_text())
        return deep_merge(deep_merge(base, world), overrides or {})

    def __call__(self, overrides: dict[str, Any] | None = None) -> Config:
        from proxy.config import load_config
        # env={}: the developer's shell (CACHEGATE_CACHE=off, CACHEGATE_*_PASSWORD) must not leak into tests.
        return load_config(self.mapping(overrides), base_dir=self.tmp_path, env={})

    def file(self, overrides: dict[str, Any] | None = None) -> Config:
        """Like calling the builder, but written to a config.yaml first: for commands run as subprocesses."""
        from proxy.config import load_config
        mapping = self.mapping(overrides)
        path = Path(mapping["stack"]["data_dir"]) / "config.yaml"
        path.write_text(yaml.safe_dump(mapping, sort_keys=False))
        return load_config(path, env={})


@pytest.fixture
def make_config(tmp_path: Path, redis_server: RedisServer, mariadb_server: MariaDBServer,
                test_secrets: TestSecrets) -> ConfigBuilder:
    return ConfigBuilder(tmp_path, redis_server, mariadb_server, test_secrets)


@pytest.fixture
async def db_config(make_config: ConfigBuilder) -> AsyncIterator[Config]:
    """A config whose fresh database has every migration applied."""
    from backends.migrate import migrate  # lazily: the backends may land after these fixtures
    config = make_config()
    await migrate(config)
    yield config
