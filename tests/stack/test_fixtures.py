"""The make_config fixture: each config points at the test servers, with its own database, prefix, ports."""
from __future__ import annotations

import pymysql

from stack.mariadb import MariaDBServer
from stack.redis import RedisServer


def test_mapping_points_at_the_test_servers(make_config, redis_server: RedisServer,
                                            mariadb_server: MariaDBServer, test_secrets) -> None:
    mapping = make_config.mapping()
    assert mapping["redis"]["url"] == redis_server.url
    assert mapping["redis"]["username"] == redis_server.users.gateway_user
    assert mapping["redis"]["password_file"] == str(test_secrets.redis_password_file)
    assert mapping["proxy"]["admin"]["token_file"] == str(test_secrets.admin_token_file)
    assert (mapping["mariadb"]["host"], mapping["mariadb"]["port"]) == ("127.0.0.1", mariadb_server.port)
    assert mapping["auth"]["public_key"] == str(test_secrets.jwt_public)
    for name, service in mapping["services"].items():
        assert mapping["upstreams"][name] == f"http://127.0.0.1:{service['port']}"
    # The routes are the shipped ones: tests run against the real policy table.
    assert any(route["path"] == "/users/{id:int}" for route in mapping["routes"])


def test_mapping_database_exists_and_its_user_can_write(make_config, test_secrets) -> None:
    db = make_config.mapping()["mariadb"]
    conn = pymysql.connect(host=db["host"], port=db["port"], user=db["user"],
                           password=test_secrets.db_password, database=db["database"])
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE probe (id INT PRIMARY KEY)")
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == (("probe",),)


def test_each_mapping_is_its_own_world(make_config) -> None:
    first, second = make_config.mapping(), make_config.mapping()
    assert first["mariadb"]["database"] != second["mariadb"]["database"]
    assert first["cache"]["prefix"] != second["cache"]["prefix"]
    assert first["stack"]["data_dir"] != second["stack"]["data_dir"]
    ports = [m["proxy"]["port"] for m in (first, second)]
    ports += [m["proxy"]["admin"]["port"] for m in (first, second)]
    ports += [s["port"] for m in (first, second) for s in m["services"].values()]
    assert len(set(ports)) == len(ports)


def test_overrides_are_deep_merged_and_lists_replaced(make_config) -> None:
    mapping = make_config.mapping({"cache": {"enabled": False}, "routes": []})
    assert mapping["cache"]["enabled"] is False
    assert mapping["cache"]["prefix"].startswith("t")  # siblings of an overridden key survive
    assert mapping["cache"]["default_ttl"] == "60s"
    assert mapping["routes"] == []


def test_config_loads_and_file_variant_has_a_path(make_config, redis_server: RedisServer) -> None:
    config = make_config({"proxy": {"workers": 2}})
    assert config.redis.port == redis_server.port and config.proxy.workers == 2
    assert config.path is None
    from_file = make_config.file({"proxy": {"workers": 3}})
    assert from_file.path is not None and from_file.path.is_file() and from_file.proxy.workers == 3
    assert from_file.stack.data_dir.is_dir()
