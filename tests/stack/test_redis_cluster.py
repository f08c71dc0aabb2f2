"""A Redis Cluster of real redis-server processes: create, the gateway's cluster client, failover, rejoin.

What the fault tests see (times, client errors) is printed as `MEASURED ...` lines (run with -s to read
them); only behaviour is asserted, never speed.
"""
from __future__ import annotations

import asyncio
import socket
import stat
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot
from redis.exceptions import ClusterDownError, NoPermissionError, RedisClusterException

from stack.net import free_port, port_open
from stack.process import StackError, pid_alive
from stack.redis_acl import RedisUsers
from stack.redis_cluster import REPLICATION_USER, RedisCluster, replication_password
from stack.redis_cluster_status import SLOTS, ClusterStatus, NodeStatus, parse_cluster_nodes

pytestmark = [pytest.mark.slow]

# The gateway's redis.timeout (config.yaml): the cluster client of a test fails as fast as the gateway's.
GATEWAY_TIMEOUT = 0.25
LUA = ("redis.call('SET', KEYS[1], ARGV[1]) redis.call('PEXPIRE', KEYS[1], 60000) "
       "return redis.call('GET', KEYS[1])")
TWO_KEYS = ("redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[1]) "
            "return redis.call('MGET', KEYS[1], KEYS[2])")


def measured(what: str, **values: Any) -> None:
    print(f"MEASURED {what}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in values.items()))


def make_cluster(folder: Path, users: RedisUsers, *, nodes: int, replicas: int,
                 **options: Any) -> RedisCluster:
    return RedisCluster(folder, "127.0.0.1", [free_port() for _ in range(nodes)], replicas=replicas,
                        users=users, bus_ports=[free_port() for _ in range(nodes)], **options)


def refusals(cluster: RedisCluster) -> list[str]:
    """Every ACL refusal the running nodes logged (refused AUTH aside: tests make those on purpose); reset."""
    found = []
    for node in cluster.nodes:
        if not node.is_running():
            continue
        client = node.admin(timeout=2.0)
        try:
            entries = client.acl_log()
            client.acl_log_reset()
        except redis.RedisError:
            continue  # paused by its test
        finally:
            client.close()
        found += [f"{node.port}: {e['username']} {e['reason']} {e['object']}" for e in entries
                  if e["reason"] != "auth"]
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, test_secrets) -> Iterator[RedisCluster]:
    made = make_cluster(tmp_path_factory.mktemp("rcluster"), test_secrets.redis_users, nodes=6, replicas=1)
    began = time.monotonic()
    try:
        assert made.start() == "created"
        measured("start from nothing, 3 masters + 3 replicas", seconds=time.monotonic() - began)
        yield made
    finally:
        made.stop()


@pytest.fixture
def healthy(cluster: RedisCluster) -> Iterator[RedisCluster]:
    """The module's cluster, healthy before the test (whatever an earlier one did); no ACL refusal after."""
    cluster.start()
    yield cluster
    denied = refusals(cluster)
    assert not denied, f"a Redis user was refused (see stack/redis_acl.py): {denied}"


def gateway_client(cluster: RedisCluster, users: RedisUsers | None = None, **options: Any) -> ClusterClient:
    """redis-py's asyncio cluster client logged in as the gateway's user (hiredis parses its replies)."""
    users = users or cluster.users
    return ClusterClient(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes],
                         username=users.gateway_user, password=users.gateway_password,
                         socket_timeout=GATEWAY_TIMEOUT, socket_connect_timeout=GATEWAY_TIMEOUT, **options)


def key_in(slots: tuple[tuple[int, int], ...], name: str = "k") -> str:
    """A key whose hash slot is in one of `slots`."""
    for i in range(100_000):
        key = f"{name}:{i}"
        if any(a <= key_slot(key.encode()) <= b for a, b in slots):
            return key
    raise AssertionError(f"no key found in {slots}")


def exists_on(cluster: RedisCluster, node: NodeStatus, key: str, *, asking: bool = False) -> bool:
    """Whether `key` is stored on that very node (asked directly as the admin, not through the cluster)."""
    client = cluster.node(int(node.address.rsplit(":", 1)[1])).admin(timeout=2.0)
    try:
        pipe = client.pipeline(transaction=False)  # one connection: ASKING holds for the next command only
        if asking:
            pipe.execute_command("ASKING")
        pipe.exists(key)
        return bool(pipe.execute()[-1])
    except (redis.exceptions.MovedError, redis.exceptions.AskError):
        return False  # the node sends us elsewhere: it holds no such key
    finally:
        client.close()


def port_of(node: NodeStatus) -> int:
    return int(node.address.rsplit(":", 1)[1])


# -- reading what the nodes say (pure) -----------------------------------------------------------------

NODES_TEXT = """\
07c37dfe 127.0.0.1:30004@31004,host-a slave e7d1eecc 0 1426238317239 4 connected
67ed2db8 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
e7d1eecc 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [5460->-67ed2db8]
6ec23923 127.0.0.1:30003@31003 master,fail? - 1426238316232 0 3 disconnected 10923 10924-16383
vars currentEpoch 6 lastVoteEpoch 0
"""


def test_cluster_nodes_lines_are_read_with_roles_slots_and_failure_flags() -> None:
    lines = {line.address: line for line in parse_cluster_nodes(NODES_TEXT)}
    assert set(lines) == {"127.0.0.1:30001", "127.0.0.1:30002", "127.0.0.1:30003", "127.0.0.1:30004"}
    replica, me, suspect = lines["127.0.0.1:30004"], lines["127.0.0.1:30001"], lines["127.0.0.1:30003"]
    assert not replica.is_master and replica.master_id == "e7d1eecc" and replica.bus_port == 31004
    assert me.is_master and "myself" in me.flags and me.slots == ((0, 5460),)  # the migration is not a slot
    assert suspect.in_trouble and suspect.link == "disconnected" and suspect.slots == ((10923, 10923),
                                                                                      (10924, 16383))


def test_a_status_names_every_reason_it_is_not_healthy() -> None:
    def node(port: int, **kw: Any) -> NodeStatus:
        base = dict(pid=1, up=True, cluster_state="ok", known_nodes=4)
        return NodeStatus(f"h:{port}", **{**base, **kw})

    masters = [node(1, role="master", slots=((0, 5460),)), node(2, role="master", slots=((5461, 10922),)),
               node(3, role="master", slots=((10923, SLOTS - 1),))]
    whole = ClusterStatus((*masters, node(4, role="replica", master="h:1", master_link="up")), 3, 0)
    assert whole.healthy and whole.owner(0).address == "h:1" and whole.owner(SLOTS - 1).address == "h:3"
    broken = ClusterStatus((*masters[:2], NodeStatus("h:3", None, up=False),
                            node(4, role="replica", master="h:1", master_link="down", cluster_state="fail",
                                 in_trouble=("h:3",))), 3, 1)
    problems = "\n".join(broken.problems())
    for reason in ("h:3 is down", "h:4 says cluster_state:fail", "h:4 sees h:3", "link to master h:1 down",
                   "2 masters hold slots, expected 3", "10923 slot(s)", "master h:2 has no replica"):
        assert reason in problems


def test_a_cluster_needs_three_masters_with_the_same_replicas_each(test_secrets, tmp_path: Path) -> None:
    for ports, replicas in (([1, 2, 3, 4], 1), ([1, 2, 3, 4, 5], 1), ([1, 2], 0)):
        with pytest.raises(ValueError, match="at least 3 masters"):
            RedisCluster(tmp_path, "127.0.0.1", ports, replicas=replicas, users=test_secrets.redis_users)


# -- a cluster of 3 masters and 3 replicas ---------------------------------------------------------------

def test_three_masters_and_three_replicas_come_up_ok_each_replica_linked(healthy: RedisCluster) -> None:
    status = healthy.status()
    assert status.healthy, status.problems()
    assert len(status.masters) == 3 and len(status.replicas) == 3
    assert sum(b - a + 1 for m in status.masters for a, b in m.slots) == SLOTS
    # Each master is followed by exactly one replica, whichever one Redis chose (read, never assumed).
    assert sorted(r.master for r in status.replicas) == sorted(m.address for m in status.masters)
    for n in status.nodes:
        assert n.up and pid_alive(n.pid) and n.cluster_state == "ok" and n.known_nodes == 6
        assert not n.in_trouble and not n.links_down
    assert all(r.master_link == "up" for r in status.replicas)
    # Replicas log in to their master as the replication user, which may do nothing but replicate.
    for master in status.masters:
        admin = healthy.node(port_of(master)).admin(2.0)
        try:
            links = admin.client_list(_type="replica")
        finally:
            admin.close()
        assert [c["user"] for c in links] == [REPLICATION_USER]


def test_each_node_has_its_own_private_conf_without_persistence_or_clear_passwords(
        healthy: RedisCluster) -> None:
    users = healthy.users
    for node in healthy.nodes:
        folder = node.data_dir
        assert {p.name for p in folder.iterdir()} >= {"redis.conf", "nodes.conf", "redis.log", "redis.pid"}
        assert stat.S_IMODE(node.conf_path.stat().st_mode) == 0o600
        text = node.conf_path.read_text()
        lines = text.splitlines()
        for line in ('save ""', "appendonly no", "cluster-enabled yes", f"port {node.port}",
                     f"cluster-port {node.bus_port}", "cluster-announce-ip 127.0.0.1",
                     "repl-diskless-sync-delay 0", "repl-diskless-load swapdb", "cluster-node-timeout 1000",
                     "cluster-require-full-coverage no", f"masteruser {REPLICATION_USER}", "maxmemory 0",
                     "maxmemory-policy noeviction"):
            assert line in lines, line
        assert users.gateway_password not in text and users.admin_password not in text
        assert f"masterauth {replication_password(users)}" in lines


async def test_the_gateway_user_sets_gets_and_runs_scripts_in_every_slot_range(healthy: RedisCluster) -> None:
    status = healthy.status()
    client = gateway_client(healthy)
    try:
        script = client.register_script(LUA)
        for master in status.masters:
            key = key_in(master.slots, "every-range")
            assert await client.set(key, "v1")
            assert await client.get(key) == b"v1"
            assert await script(keys=[key], args=["v2"]) == b"v2"  # EVALSHA, loaded on its NOSCRIPT
            assert await client.get(key) == b"v2"
            assert exists_on(healthy, master, key)  # it went to the master that owns its slot
        # Keys sharing a hash tag share a slot, so one node holds both and one script may touch both.
        tagged = ["{trip:7}:entry", "{trip:7}:fence"]
        assert await client.register_script(TWO_KEYS)(keys=tagged, args=["x"]) == [b"x", b"x"]
        assert await client.mget(tagged) == [b"x", b"x"]
        owner = status.owner(key_slot(b"trip:7"))
        assert all(exists_on(healthy, owner, key) for key in tagged)
        others = [m for m in status.masters if m.address != owner.address]
        assert not any(exists_on(healthy, m, key) for m in others for key in tagged)
    finally:
        await client.aclose()


async def test_the_gateway_user_follows_an_ask_redirect_while_a_slot_migrates(healthy: RedisCluster) -> None:
    status = healthy.status()
    source, target = status.masters[0], status.masters[1]
    key = key_in(source.slots, "migrating")
    slot = key_slot(key.encode())
    source_admin = healthy.node(port_of(source)).admin(2.0)
    target_admin = healthy.node(port_of(target)).admin(2.0)
    client = gateway_client(healthy)
    try:
        target_admin.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        source_admin.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        # The key is not on the source: it answers -ASK, and the client sends ASKING, then SET, to the target.
        assert await client.set(key, "moved")
        assert await client.get(key) == b"moved"
        assert exists_on(healthy, target, key, asking=True) and not exists_on(healthy, source, key)
    finally:
        await client.aclose()
        pipe = target_admin.pipeline(transaction=False)
        pipe.execute_command("ASKING")
        pipe.delete(key)
        pipe.execute()
        for admin in (source_admin, target_admin):
            admin.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
            admin.close()


def test_the_admin_runs_cluster_info_and_the_gateway_cannot_reconfigure(healthy: RedisCluster) -> None:
    node = healthy.nodes[0]
    admin = node.admin(2.0)
    try:
        assert "cluster_state:ok" in admin.execute_command("CLUSTER", "INFO")
    finally:
        admin.close()
    gateway = redis.Redis(host="127.0.0.1", port=node.port, username=healthy.users.gateway_user,
                          password=healthy.users.gateway_password, socket_timeout=2.0)
    try:
        for command in (("CLUSTER", "RESET"), ("CLUSTER", "FAILOVER"), ("CLUSTER", "INFO"), ("FLUSHALL",),
                        ("CONFIG", "SET", "maxmemory", "1"), ("SHUTDOWN", "NOSAVE")):
            with pytest.raises(NoPermissionError):
                gateway.execute_command(*command)
    finally:
        gateway.close()
    refusals(healthy)  # those refusals were the point: do not count them against the ACL


async def test_a_client_without_auth_or_with_a_wrong_password_is_refused(healthy: RedisCluster) -> None:
    for node in healthy.nodes:
        with socket.create_connection(("127.0.0.1", node.port), timeout=2.0) as sock:
            sock.sendall(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n")
            assert sock.recv(100).startswith(b"-NOAUTH")
    anonymous = ClusterClient(startup_nodes=[ClusterNode(h, p) for h, p in healthy.startup_nodes],
                              socket_timeout=2.0)
    wrong = gateway_client(healthy, RedisUsers(healthy.users.gateway_user, "not-the-password",
                                               healthy.users.admin_password))
    for client in (anonymous, wrong):
        with pytest.raises(RedisClusterException):
            await client.initialize()
        await client.aclose()


@pytest.mark.fault
def test_a_paused_node_is_down_in_the_status_and_healthy_again_once_resumed(healthy: RedisCluster) -> None:
    replica = healthy.status().replicas[0]
    healthy.pause(port_of(replica))
    try:
        seen = healthy.status().node(replica.address)
        assert not seen.up and pid_alive(seen.pid)  # the process lives, but answers nothing
        assert not healthy.status().healthy
    finally:
        healthy.resume(port_of(replica))
    assert healthy.start() == "running"  # nothing to start: it waits until the node is back in the cluster
    assert healthy.status().healthy


class Probe:
    """A sequential client loop, as one gateway connection: what it saw, when, and which errors."""

    def __init__(self, client: ClusterClient, keys: list[str]) -> None:
        self.client = client
        self.keys = keys
        self.ok_at: dict[str, float] = {}  # the key's last success
        self.errors: list[tuple[float, float, str, str]] = []  # (began, ended, key, error type)
        self.done = 0
        self.stopping = False

    async def run(self) -> None:
        i = 0
        while not self.stopping:
            key = self.keys[i % len(self.keys)]
            i += 1
            began = time.monotonic()
            try:
                await self.client.set(key, str(i))
                assert await self.client.get(key) == str(i).encode()
                self.ok_at[key] = time.monotonic()
                self.done += 1
            except redis.RedisError as exc:
                self.errors.append((began, time.monotonic(), key, type(exc).__name__))
            await asyncio.sleep(0)


async def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.mark.fault
async def test_a_killed_master_fails_over_its_replica_and_rejoins_as_a_replica(healthy: RedisCluster) -> None:
    before = healthy.status()
    victim = before.masters[0]
    heir = before.replicas_of(victim)[0]
    keys = [key_in(m.slots, f"probe{i}") for i, m in enumerate(before.masters)] + [key_in(victim.slots, "v2")]
    victim_keys = keys[:1] + keys[-1:]
    client = gateway_client(healthy)
    probe = Probe(client, keys)
    task = asyncio.create_task(probe.run())
    try:
        assert await wait_for(lambda: probe.done > 20, 10), probe.errors
        killed_at = time.monotonic()
        healthy.kill(port_of(victim))

        def promoted(status: ClusterStatus) -> bool:
            node = status.node(heir.address)
            return (node.role == "master" and node.slots == victim.slots
                    and all(n.cluster_state == "ok" for n in status.nodes if n.up))

        after = await asyncio.to_thread(healthy.wait, promoted, 30)
        promoted_at = time.monotonic()
        assert promoted(after), after.lines()
        # The client finds the new master by itself: every victim key is written again after the promotion.
        assert await wait_for(lambda: all(probe.ok_at.get(k, 0) > promoted_at for k in victim_keys), 30), \
            probe.errors[-5:]
    finally:
        probe.stopping = True
        await task
        await client.aclose()
    errors = [e for e in probe.errors if e[0] >= killed_at]
    window = (errors[-1][1] - errors[0][0]) if errors else 0.0
    measured("failover of a SIGKILLed master, node-timeout 1000ms", promoted_after=promoted_at - killed_at,
             client_errors=len(errors), error_window=window,
             kinds=sorted({e[3] for e in errors}), ops_ok=probe.done,
             others_failed=sum(1 for e in errors if e[2] not in victim_keys))
    assert after.node(victim.address).up is False

    began = time.monotonic()
    assert healthy.start() == "restarted"
    rejoined = healthy.status()
    measured("killed master restarted until healthy", seconds=time.monotonic() - began)
    assert rejoined.healthy, rejoined.problems()
    back = rejoined.node(victim.address)
    assert back.role == "replica" and back.master == heir.address and back.master_link == "up"
    # No persistence: the full resync of the rejoined node went over the socket, no RDB file anywhere.
    assert not [p for n in healthy.nodes for p in n.data_dir.glob("*.rdb")]


@pytest.fixture
def masters_only(tmp_path: Path, test_secrets) -> Iterator[Callable[..., RedisCluster]]:
    """Clusters of 3 masters and no replica, made per call; each stopped after the test, no process left."""
    made: list[RedisCluster] = []

    def factory(**options: Any) -> RedisCluster:
        made.append(make_cluster(tmp_path / f"c{len(made)}", test_secrets.redis_users, nodes=3, replicas=0,
                                 **options))
        assert made[-1].start() == "created"
        return made[-1]

    yield factory
    pids = [n.pid for c in made for n in c.nodes]
    for cluster in made:
        cluster.stop()
    assert not any(pid_alive(pid) for pid in pids)


async def first_master(cluster: RedisCluster) -> str:
    """The master a new cluster client sends COMMAND to when it starts (the first of CLUSTER SLOTS)."""
    client = gateway_client(cluster)
    try:
        await client.initialize()
        return client.get_default_node().name
    finally:
        await client.aclose()


def failed_for_all(cluster: RedisCluster, victim: NodeStatus) -> ClusterStatus:
    """Wait until every live node agrees the victim has failed (`fail`, not just suspected)."""
    status = cluster.wait(lambda s: all(victim.address in n.failed for n in s.nodes if n.up), 30)
    assert all(victim.address in n.failed for n in status.nodes if n.up), status.lines()
    return status


@pytest.mark.fault
@pytest.mark.parametrize("full_coverage", [False, True], ids=["full-coverage-no", "full-coverage-yes"])
async def test_a_master_killed_without_replicas(masters_only, full_coverage: bool) -> None:
    """`no` (our default): only the dead master's keys fail; `yes`: every key fails, the cluster is down."""
    cluster = masters_only(require_full_coverage=full_coverage, maxmemory=64 * 2**20)
    before = cluster.status()
    admin = cluster.nodes[0].admin(2.0)
    try:
        assert admin.config_get("maxmemory") == {"maxmemory": str(64 * 2**20)}
        assert admin.config_get("cluster-require-full-coverage") == {
            "cluster-require-full-coverage": "yes" if full_coverage else "no"}
    finally:
        admin.close()
    first = await first_master(cluster)
    # Not the master new clients start from: that case is test_a_client_started_while_its_first_master_...
    victim = next(m for m in before.masters if m.address != first)
    survivors = [m for m in before.masters if m.address != victim.address]
    dead_key = key_in(victim.slots, "dead")
    live_keys = [key_in(m.slots, "live") for m in survivors]
    client = gateway_client(cluster)  # a gateway running through the fault
    fresh = gateway_client(cluster)  # a gateway started while the master is dead
    seen = set()
    try:
        for key in [dead_key, *live_keys]:
            assert await client.set(key, "before")
        killed_at = time.monotonic()
        cluster.kill(port_of(victim))
        after = await asyncio.to_thread(failed_for_all, cluster, victim)
        if full_coverage:
            after = await asyncio.to_thread(
                cluster.wait, lambda s: all(n.cluster_state == "fail" for n in s.nodes if n.up), 30)
        states = sorted({n.cluster_state for n in after.nodes if n.up})
        measured(f"master killed without replicas, full coverage {'yes' if full_coverage else 'no'}",
                 decided_after=time.monotonic() - killed_at, states=states)
        assert states == (["fail"] if full_coverage else ["ok"])
        last = b"before"
        for name, used in ((b"running", client), (b"fresh", fresh)):
            if full_coverage:
                for key in live_keys:
                    # CLUSTERDOWN, or the client's own refresh of the slot map meeting the dead node
                    with pytest.raises((ClusterDownError, redis.ConnectionError)) as refused:
                        await used.get(key)
                    seen.add(type(refused.value).__name__)
            else:
                assert [await used.get(key) for key in live_keys] == [last] * len(live_keys)
                assert [await used.set(key, name) for key in live_keys] == [True] * len(live_keys)
                last = name
                with pytest.raises(redis.ConnectionError) as refused:
                    await used.get(dead_key)
                seen.add(type(refused.value).__name__)
                assert await used.get(live_keys[0]) == name  # the dead key's error spoilt nothing else
        measured(f"what the clients saw, full coverage {'yes' if full_coverage else 'no'}",
                 failing=["the dead master's keys", "every key"][full_coverage], errors=sorted(seen))
        assert cluster.start() == "restarted"  # the dead master comes back, empty, with its slots
        assert cluster.status().healthy
        assert await client.get(dead_key) is None  # no persistence
        assert await client.get(live_keys[0]) is not None
    finally:
        await client.aclose()
        await fresh.aclose()


@pytest.mark.fault
@pytest.mark.xfail(strict=True, raises=redis.ConnectionError, reason=(
    "redis-py 8.1: RedisCluster.initialize() sends COMMAND to the first master of CLUSTER SLOTS "
    "(nodes_manager.default_node) and its ConnectionError escapes execute_command's retries, so a client "
    "started while that master is dead fails every command, even for keys of live masters"))
async def test_a_client_started_while_its_first_master_is_dead_still_serves_the_others(masters_only) -> None:
    cluster = masters_only()
    before = cluster.status()
    first = await first_master(cluster)
    victim = before.node(first)
    live_key = key_in(next(m for m in before.masters if m.address != first).slots, "live")
    cluster.kill(port_of(victim))
    await asyncio.to_thread(failed_for_all, cluster, victim)
    fresh = gateway_client(cluster)
    try:
        assert await fresh.set(live_key, "v")
    finally:
        await fresh.aclose()


async def test_stop_leaves_no_process_and_start_restarts_from_nodes_conf(healthy: RedisCluster) -> None:
    client = gateway_client(healthy)
    try:
        assert await client.set("before-stop", "v")
    finally:
        await client.aclose()
    pids = [n.pid for n in healthy.nodes]
    healthy.stop()
    assert not any(pid_alive(pid) for pid in pids)
    assert not any(port_open("127.0.0.1", port) for n in healthy.nodes for port in (n.port, n.bus_port))
    assert not any(n.pid_path.exists() for n in healthy.nodes)
    assert all(n.nodes_conf_path.exists() for n in healthy.nodes)
    began = time.monotonic()
    assert healthy.start() == "restarted"
    measured("restart of a stopped cluster from its nodes.conf", seconds=time.monotonic() - began)
    assert healthy.status().healthy
    client = gateway_client(healthy)
    try:
        assert await client.get("before-stop") is None  # no persistence: nothing survives a stop
    finally:
        await client.aclose()


def test_start_creates_again_when_the_saved_cluster_does_not_match(healthy: RedisCluster) -> None:
    healthy.stop()
    healthy.nodes[2].nodes_conf_path.unlink()
    assert healthy.start() == "created"
    assert healthy.status().healthy


def test_a_node_that_lost_its_nodes_conf_while_the_others_run_is_refused(healthy: RedisCluster) -> None:
    replica = healthy.status().replicas[0]
    node = healthy.node(port_of(replica))
    node.kill()
    node.nodes_conf_path.unlink()
    with pytest.raises(StackError, match="lost its nodes.conf"):
        healthy.start()
    assert not node.is_running()
    healthy.stop()  # the way out: a stopped cluster is created again
    assert healthy.start() == "created"
