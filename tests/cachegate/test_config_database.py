"""mariadb.nodes: one node or a Galera cluster, each node's ports; config.cluster.yaml beside config.yaml."""
from __future__ import annotations

import copy
import difflib
from pathlib import Path

import pytest
import yaml

from cachegate.config import load_config
from cachegate.errors import ConfigError
from cachegate.settings import DatabaseNode

REPO = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((REPO / "config.yaml").read_text())


def with_database(**mariadb) -> dict:
    data = copy.deepcopy(SHIPPED)
    data["mariadb"].pop("nodes")
    data["mariadb"].update(mariadb)
    return data


def refused(data: dict, env: dict | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(data, env=env or {}, base_dir=REPO)
    return str(info.value)


def test_the_shipped_config_is_one_plain_server():
    db = load_config(REPO / "config.yaml", env={}).mariadb
    assert db.nodes == (DatabaseNode("127.0.0.1", 3316),) and not db.cluster
    assert (db.host, db.port) == ("127.0.0.1", 3316)


def test_the_cluster_config_is_three_nodes_with_their_galera_ports_derived():
    db = load_config(REPO / "config.cluster.yaml", env={}).mariadb
    assert db.cluster and db.sync_wait == 1
    assert db.nodes == tuple(DatabaseNode("127.0.0.1", 3317 + i, 13317 + i, 23317 + i, 33317 + i)
                             for i in range(3))


def test_the_cluster_config_is_config_yaml_but_for_the_cluster():
    """Only its own data folder (and the secrets in it), the database's and Redis's nodes and the number of
    gateway workers may differ."""
    plain = (REPO / "config.yaml").read_text().splitlines()
    cluster = (REPO / "config.cluster.yaml").read_text().splitlines()
    changed = [line[2:] for line in difflib.ndiff(plain, cluster) if line[:2] in ("- ", "+ ")]
    allowed = [line for line in changed
               if line.startswith("# ") or ".stack" in line or line.startswith("  nodes: [")
               or line.startswith("    nodes: [") or line.startswith("  workers: ")]
    assert changed == allowed
    a, b = yaml.safe_load("\n".join(plain)), yaml.safe_load("\n".join(cluster))
    for data in (a, b):
        del data["mariadb"]["nodes"], data["redis"]["cluster"]["nodes"], data["proxy"]["workers"]
    assert yaml.safe_dump(a).replace(".stack/", ".stack-cluster/").replace(
        "data_dir: .stack\n", "data_dir: .stack-cluster\n") == yaml.safe_dump(b)


def test_nodes_as_host_port_mappings_and_one_string_from_the_environment():
    third = {"host": "db3", "port": 3308, "gcomm_port": 4567, "ist_port": 4568, "sst_port": 4444}
    db = load_config(with_database(nodes=["10.0.0.1:3306", "[::1]:3307", third]), env={}).mariadb
    assert db.nodes == (DatabaseNode("10.0.0.1", 3306, 13306, 23306, 33306),
                        DatabaseNode("::1", 3307, 13307, 23307, 33307),
                        DatabaseNode("db3", 3308, 4567, 4568, 4444))
    assert str(db.nodes[1]) == "[::1]:3307"
    env = {"CACHEGATE__MARIADB__NODES": "a:3306, b:3306,c:3306"}
    db = load_config(REPO / "config.yaml", env=env).mariadb
    assert [(n.host, n.port) for n in db.nodes] == [("a", 3306), ("b", 3306), ("c", 3306)]


def test_host_and_port_are_the_shorthand_for_one_node_and_cannot_join_nodes():
    db = load_config(with_database(host="10.1.1.1", port=3399), env={}).mariadb
    assert db.nodes == (DatabaseNode("10.1.1.1", 3399),)
    assert load_config(with_database(), env={}).mariadb.nodes == (DatabaseNode("127.0.0.1", 3306),)
    message = refused(with_database(nodes=["a:3306"], port=3307))
    assert message == "<config>: mariadb.port: give the database as nodes or as host and port, not both"


def test_galera_port_offsets_are_configurable():
    db = load_config(with_database(nodes=["a:3306", "b:3306"], galera_ports={"gcomm": 1, "ist": 2, "sst": 3}),
                     env={}).mariadb
    assert db.nodes[0] == DatabaseNode("a", 3306, 3307, 3308, 3309)


@pytest.mark.parametrize("nodes, reason", [
    ([], "mariadb.nodes: expected a list of host:port, e.g. [127.0.0.1:3316]"),
    ({"host": "a"}, "mariadb.nodes: expected a list of host:port"),
    (["db"], 'mariadb.nodes[0]: expected host:port, got "db"'),
    (["db:0"], 'mariadb.nodes[0]: expected host:port, got "db:0"'),
    (["db:65536"], 'mariadb.nodes[0]: expected host:port, got "db:65536"'),
    ([":3306"], 'mariadb.nodes[0]: expected host:port, got ":3306"'),
    ([3306], "mariadb.nodes[0]: expected host:port or a mapping"),
    ([{"host": "a"}], "mariadb.nodes[0].port: is required"),
    ([{"host": "a", "port": 1, "gcom_port": 2}], "mariadb.nodes[0].gcom_port: unknown key"),
    (["a:3306", "a:3306"], "mariadb.nodes[1].port: a:3306 is also nodes[0].port; every node needs ports of"),
    (["a:3306", "a:13306"], "mariadb.nodes[1].port: a:13306 is also nodes[0].gcomm_port"),
    (["a:50000", "b:3306"], "mariadb.nodes[0].ist_port: ist port 50000 + galera_ports.ist (20000) is past "
                            "65535; give ist_port"),
])
def test_bad_nodes_are_refused_naming_the_place(nodes, reason):
    assert reason in refused(with_database(nodes=nodes))


def test_a_plain_server_has_no_galera_ports_so_a_high_port_is_fine():
    assert load_config(with_database(nodes=["a:60000"]), env={}).mariadb.nodes == (DatabaseNode("a", 60000),)


@pytest.mark.parametrize("key, value, reason", [
    ("sync_wait", 16, "mariadb.sync_wait: expected an integer from 0 to 15"),
    ("conflict_retries", -1, "mariadb.conflict_retries: expected an integer from 0 to 20"),
    ("query_timeout", "10ms", "mariadb.query_timeout: expected at least 100ms"),
    ("probe", {"interval": "10ms"}, "mariadb.probe.interval: expected at least 50ms"),
    ("probe", {"timeout": "9s"}, "mariadb.probe.timeout: expected 50ms to query_timeout (4s), got 9s"),
])
def test_bad_failover_settings_are_refused(key, value, reason):
    data = copy.deepcopy(SHIPPED)
    data["mariadb"][key] = value
    assert reason in refused(data)
