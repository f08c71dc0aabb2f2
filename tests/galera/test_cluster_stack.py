"""The whole stack on a 3-node Galera cluster, started by `cachegate up`: status, faults, versions, restarts.

One stack serves the module (`up` from nothing takes ~15 s); every test begins with every process up and
every node serving, and leaves the stack running.
"""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
from typing import Iterator

import aiohttp
import pytest

from backends.common.db import DB_POOL, fetch_one
from backends.seed import credentials_path, seeded_ids
from backends.users.app import create_app as users_app
from loadtest import cluster as cluster_section
from loadtest import runner
from loadtest.summary import best, group, hit_ratio
from stack import launcher
from stack.galera_conf import read_grastate
from stack.process import pid_alive
from tests.support.galera_load import PASSWORD, Load, Writer, check_nothing_lost, register
from tests.support.galera_stack import ClusterStack, cluster_stack
from tests.support.polling import poll

# What a joiner's log says when it got a full copy, and when it got only the missing write-sets.
SST_WORDS = ("Proceeding with SST", "mariabackup SST completed on joiner")
IST_WORDS = ("Receiving IST:", "IST received:")
FAIL_FAST = "the database is unavailable, retry later"  # no node tried: every one was left
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    stack = cluster_stack(tmp_path_factory.mktemp("gs"))
    try:
        stack.up("up from nothing")
        yield stack
    finally:
        stack.down()
        # For the record (run with -s); speed is measured in the load test, never asserted here.
        print("\n" + "\n".join(f"cluster stack {what}: {s:.1f}s" for what, s in stack.timings.items()))


@pytest.fixture(autouse=True)
def _healthy(request: pytest.FixtureRequest) -> None:
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").heal()


def assert_joined_by_ist(node, offset: int) -> None:
    with open(node.log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    assert not [w for w in SST_WORDS if w in text], f"{node.name} got a full SST:\n{text[-3000:]}"
    assert [w for w in IST_WORDS if w in text], f"{node.name} shows no IST:\n{text[-3000:]}"


def cli_status(stack: ClusterStack) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cachegate", "status", "--config", str(stack.path)],
                          capture_output=True, text=True, timeout=60)


def test_up_starts_three_synced_nodes_and_status_shows_each(cluster: ClusterStack) -> None:
    rows = {row.name: row for row in launcher.status(cluster.config)}
    assert [n for n in rows if n.startswith("mariadb")] == ["mariadb-n1", "mariadb-n2", "mariadb-n3"]
    for name in ("mariadb-n1", "mariadb-n2", "mariadb-n3"):
        assert rows[name].up and rows[name].state == "Synced, cluster size 3, Primary", rows[name]
    result = cli_status(cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mariadb-n2" in result.stdout and "Synced, cluster size 3, Primary" in result.stdout


async def test_sigkill_of_the_node_in_use_under_writes_through_the_gateway_loses_no_acknowledged_write(
        cluster: ClusterStack) -> None:
    unit = cluster.database()
    victim = unit.cluster.nodes[0]  # every service is pinned to node 1, the first of mariadb.nodes
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        writers = [Writer(*await register(http, cluster.proxy_url, f"killed{i}")) for i in range(4)]
        load = Load(http, cluster, writers)
        running = asyncio.ensure_future(load.run())
        try:
            assert await poll(lambda: _at_least(load, 40), 30), load.answers
            cluster.unsupervised()  # so that node 1 stays down until `up` (the supervisor would restart it)
            pid = victim.pid
            victim.kill()
            assert pid is not None and not pid_alive(pid)
            at_kill = load.acked
            # The survivors stall until they have dropped node 1 (~3 s); then the services, having left it,
            # acknowledge writes again through node 2.
            assert await poll(lambda: _at_least(load, at_kill + 60), 60), load.answers
            result = await asyncio.to_thread(cli_status, cluster)
            assert result.returncode == 3, result.stdout
            assert any(line.startswith("mariadb-n1") and line.rstrip().endswith("down")
                       for line in result.stdout.splitlines()), result.stdout

            offset = victim.log_path.stat().st_size
            # `up` runs its own event loop: in a thread, while the load goes on in this one.
            started = await asyncio.to_thread(cluster.up, "rejoin of the killed node (IST) under load")
            # Started at its recovered position, so it got only the missing write-sets from a donor.
            assert len(started) == 1 and re.fullmatch(r"n1: joined at \S+:\d+, state transfer: IST, .*",
                                                       started[0]), started
            assert_joined_by_ist(victim, offset)
            at_rejoin = load.acked
            assert await poll(lambda: _at_least(load, at_rejoin + 40), 60), load.answers
        finally:
            load.stop()
            await running
    assert load.unexpected == [], load.unexpected[:20]
    assert launcher.status(cluster.config) and cluster.healthy()
    checked = check_nothing_lost(cluster, writers)
    assert checked["users"] == 3 * len(writers) and checked["paths"] > 0 and checked["trips"] > 0, checked
    print(f"\nanswers while node 1 died and rejoined: {dict(load.answers)}; checked on every node: {checked}")


async def _at_least(load: Load, count: int) -> bool:
    return load.acked >= count


@pytest.fixture
async def pinned(cluster: ClusterStack, aiohttp_client):
    """users services in this process (real servers on real sockets), each pinned to the node given."""
    async def make(node: int, **mariadb):
        return await aiohttp_client(users_app(cluster.node_config(node, **mariadb)))
    return make


async def test_a_write_acknowledged_through_one_node_is_read_at_once_through_another(pinned) -> None:
    on_n1, on_n3 = await pinned(0), await pinned(2)
    user_id, auth = await register_direct(on_n1, "ryw")
    database = on_n3.server.app[DB_POOL]
    assert await fetch_one(database, "SELECT @@session.wsrep_sync_wait AS w") == {"w": 1}
    stale = []
    for i in range(150):
        resp = await on_n1.patch(f"/users/{user_id}", json={"title": f"r{i}"}, headers=auth)
        assert resp.status == 200, await resp.text()
        written = (await resp.json())["version"]
        resp = await on_n3.get(f"/users/{user_id}", headers=auth)
        read = await resp.json()
        if (read["version"], read["title"]) != (written, f"r{i}"):
            stale.append((written, read["version"]))
    assert stale == []
    assert database.nodes.pick().address == database.config.nodes[0]  # it really read on node 3


async def test_concurrent_patches_through_two_nodes_keep_versions_unique_and_the_losers_get_412(
        pinned) -> None:
    on_n1, on_n2 = await pinned(0), await pinned(1)
    user_id, auth = await register_direct(on_n1, "contended")
    version = (await (await on_n1.get(f"/users/{user_id}", headers=auth)).json())["version"]
    acknowledged: list[int] = []
    for i in range(40):
        guarded = {**auth, "If-Match": f'"{version}"'}
        answers = await asyncio.gather(
            on_n1.patch(f"/users/{user_id}", json={"title": f"a{i}"}, headers=guarded),
            on_n2.patch(f"/users/{user_id}", json={"title": f"b{i}"}, headers=guarded))
        statuses = sorted(r.status for r in answers)
        assert statuses in ([200, 409], [200, 412]), [(r.status, await r.text()) for r in answers]
        won = next(r for r in answers if r.status == 200)
        version += 1
        assert (await won.json())["version"] == version
        acknowledged.append(version)
    for i in range(40):  # no If-Match: both writes happen, one after the other, each with its own version
        answers = await asyncio.gather(
            on_n1.patch(f"/users/{user_id}", json={"title": f"c{i}"}, headers=auth),
            on_n2.patch(f"/users/{user_id}", json={"title": f"d{i}"}, headers=auth))
        assert [r.status for r in answers] == [200, 200], [await r.text() for r in answers]
        acknowledged += [(await r.json())["version"] for r in answers]
    assert len(set(acknowledged)) == len(acknowledged) == 120
    assert max(acknowledged) == version + 80
    final = (await (await on_n2.get(f"/users/{user_id}", headers=auth)).json())["version"]
    assert final == max(acknowledged)
    conflicts = on_n1.server.app[DB_POOL].conflicts + on_n2.server.app[DB_POOL].conflicts
    print(f"\ncertification conflicts run again: {conflicts}")
    assert conflicts > 0  # the two nodes did meet on the row, and the losers were run again


async def register_direct(client, login: str) -> tuple[int, dict[str, str]]:
    body = {"login": login, "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace",
            "email": f"{login}@example.com", "title": "t0"}
    resp = await client.post("/users", json=body)
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    resp = await client.post("/auth/token", json={"login": login, "password": PASSWORD})
    return user_id, {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def test_quorum_loss_answers_a_fast_json_503_to_what_needs_the_database_and_serves_cached_reads(
        cluster: ClusterStack) -> None:
    n1, n2, n3 = cluster.database().cluster.nodes
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        base = cluster.proxy_url
        user_id, auth = await register(http, base, "quorum")
        other_id, _ = await register(http, base, "quorum-other")
        cached_id, _ = await register(http, base, "quorum-cached")  # read, never written: stays cached
        for _ in range(2):  # stored, then a hit
            async with http.get(f"{base}/users/{cached_id}", headers=auth) as resp:
                assert resp.status == 200
                cache = resp.headers["Cache-Status"]
        assert "hit" in cache, cache

        cluster.unsupervised()  # so that the quorum stays lost until `up`
        n2.kill()
        n3.kill()
        assert await poll(lambda: _status_is(n1, "non-Primary"), 30), n1.status()

        async def refused_at_once() -> bool:
            async with http.patch(f"{base}/users/{user_id}", json={"title": "x"}, headers=auth) as resp:
                body = await resp.json()
            return resp.status == 503 and body["error"]["message"] == FAIL_FAST

        assert await poll(refused_at_once, 30)  # the services have left node 1: no quorum, no queries
        needs_database = [("PATCH", f"/users/{user_id}", {"title": "y"}), ("GET", f"/users/{other_id}", None),
                          ("GET", "/users/me", None),
                          ("POST", "/paths", {"start_point": "A", "end_point": "B"}),
                          ("GET", f"/trips?owner={user_id}", None),
                          ("POST", "/auth/token", {"login": "quorum", "password": PASSWORD})]
        for method, path, body in needs_database * 5:
            headers = {} if path == "/auth/token" else auth
            async with http.request(method, base + path, json=body, headers=headers) as resp:
                answer = await resp.json()
                assert resp.status == 503 and answer["error"]["code"] == "database_unavailable", \
                    (method, path, resp.status, answer)
                assert resp.headers["Retry-After"] == "1"
        for _ in range(20):
            async with http.get(f"{base}/users/{cached_id}", headers=auth) as resp:
                assert resp.status == 200 and "hit" in resp.headers["Cache-Status"], resp.headers
                assert (await resp.json())["id"] == cached_id
    # `up` makes the lone survivor (its peers' processes are gone) the primary component, then rejoins them.
    lines = await asyncio.to_thread(cluster.up, "up after a loss of quorum")
    assert [line.split(":")[0] for line in lines] == ["n2", "n3"], lines
    assert all("state transfer: IST" in line for line in lines), lines
    assert cluster.healthy()


async def _status_is(node, cluster_status: str) -> bool:
    return (await asyncio.to_thread(node.status)).cluster_status == cluster_status


def test_down_then_up_restarts_from_the_node_stopped_last_and_keeps_every_row(cluster: ClusterStack) -> None:
    tables = ("users", "paths", "trips", "trip_members")

    def contents(node: int) -> dict[str, tuple[int, int]]:
        """Each table's row count and checksum on one node."""
        return {t: (cluster.query(node, f"SELECT COUNT(*) FROM {t}")[0][0],
                    cluster.query(node, f"CHECKSUM TABLE {t}")[0][1]) for t in tables}

    before = contents(0)
    assert before["users"][0] > 0
    assert all(contents(i) == before for i in (1, 2))
    unit = cluster.database()
    pids = unit.pids
    assert len(pids) == 3

    cluster.down()
    assert not any(pid_alive(p) for p in pids)
    assert not any(row.up for row in launcher.status(cluster.config))
    states = {n.name: read_grastate(n.grastate_path) for n in unit.cluster.nodes}
    assert {name for name, s in states.items() if s.safe_to_bootstrap} == {"n1"}, states
    result = cli_status(cluster)
    assert result.returncode == 3 and result.stdout.count(" down") == len(result.stdout.splitlines())

    lines = cluster.up("up from stopped data")
    assert [line.split(":")[0] for line in lines] == ["n1", "n2", "n3"], lines
    assert "bootstrapped (safe_to_bootstrap: 1)" in lines[0], lines
    assert not any("state transfer: SST" in line for line in lines), lines
    assert cluster.healthy()
    for node in range(3):
        assert contents(node) == before, node


def test_the_quick_load_test_runs_on_the_cluster_and_renders_its_section_beside_the_one_node_run(
        cluster: ClusterStack, tmp_path) -> None:
    results, report = tmp_path / "results", tmp_path / "report" / "performance.md"
    code = runner.main(["--config", str(cluster.path), "--quick", "--results", str(results),
                        "--report", str(report)])
    run = json.loads((results / "results.json").read_text())
    assert code == runner.EXIT_VALID, run["problems"]
    assert run["section"] == "cluster" and run["database"]["cluster"] and len(run["database"]["nodes"]) == 3
    groups = {p["group"] for p in run["points"]}
    assert {"cache-off", "cache-on", "mixed"} <= groups and not groups & {"bare", "backend"}
    assert hit_ratio(group(run["points"], "cache-on")) > 0.9
    assert all("mariadb" in p["cpu_us_per_request"] for p in group(run["points"], "cache-off"))
    assert run["sync_wait"]["0"]["p50_us"] > 0 and run["sync_wait"]["1"]["p50_us"] > 0
    # The report is the committed one-node run, rendered again, with this run's section in it.
    main = json.loads(cluster_section.MAIN_RESULTS.read_text())
    text = report.read_text()
    assert "## On a 3-node Galera cluster" in text and "not how it scales" in text
    for points in (main["points"], run["points"]):
        top = best(group(points, "cache-on"))
        assert f"{top['rps']:.0f} (c={top['connections']})" in text
    assert f"| 1 | {run['sync_wait']['1']['p50_us']:.0f} |" in text
    assert json.loads(cluster_section.MAIN_RESULTS.read_text()) == main  # the one-node run is untouched
    assert cluster.healthy()  # it used the running stack, and stopped nothing


async def test_a_paused_node_is_left_and_the_services_come_back_to_it_once_it_runs_again(
        cluster: ClusterStack) -> None:
    n1 = cluster.database().cluster.nodes[0]

    def local_commits(node: int) -> int:
        (_, value), = cluster.query(node, "SHOW GLOBAL STATUS LIKE 'wsrep_local_commits'", sync_wait=0)
        return int(value)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        writers = [Writer(*await register(http, cluster.proxy_url, f"paused{i}")) for i in range(2)]
        load = Load(http, cluster, writers)
        running = asyncio.ensure_future(load.run())
        try:
            assert await poll(lambda: _at_least(load, 20), 30), load.answers
            survivors = await asyncio.to_thread(lambda: local_commits(1) + local_commits(2))
            n1.pause()  # SIGSTOP: its ports stay open, nothing answers
            try:
                at_pause = load.acked
                # Its probe gets no answer within a second: the services leave it and go on through another.
                assert await poll(lambda: _at_least(load, at_pause + 40), 60), load.answers
                assert await asyncio.to_thread(lambda: local_commits(1) + local_commits(2)) > survivors + 20
            finally:
                n1.resume()
            assert await poll(lambda: asyncio.to_thread(cluster.healthy), 60)  # it rejoins by itself
            seen: dict[str, int] = {}

            async def back_on_n1() -> bool:
                """Node 1 commits the services' writes again (its counter restarts if it rejoins anew)."""
                now = await asyncio.to_thread(local_commits, 0)
                if "base" not in seen or now < seen["last"]:
                    seen["base"] = now
                seen["last"] = now
                return now - seen["base"] >= 20

            assert await poll(back_on_n1, 60, interval=0.5), (seen, load.answers)
        finally:
            load.stop()
            await running
    assert load.unexpected == [], load.unexpected[:20]
    check_nothing_lost(cluster, writers)
    print(f"\nanswers while node 1 was paused and resumed: {dict(load.answers)}")


async def test_the_seed_on_the_cluster_takes_the_ids_galera_hands_out_and_its_credentials_work(
        cluster: ClusterStack) -> None:
    ids = await seeded_ids(cluster.config, 20)
    assert len(ids) == 20 and ids == sorted(ids)
    # Every node hands out ids of its own residue (auto_increment_increment = 3): never consecutive ones.
    assert {b - a for a, b in zip(ids, ids[1:])} == {3}, ids
    known = json.loads(credentials_path(cluster.config).read_text())["users"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        for user in known[:3]:
            assert user["id"] in ids
            login = {"login": user["login"], "password": user["password"]}
            async with http.post(f"{cluster.proxy_url}/auth/token", json=login) as resp:
                token = (await resp.json())["access_token"]
            async with http.get(f"{cluster.proxy_url}/users/me",
                                headers={"Authorization": f"Bearer {token}"}) as resp:
                me = await resp.json()
            assert (me["id"], me["login"]) == (user["id"], user["login"])


def _invalidator(cluster: ClusterStack) -> dict:
    url = f"http://127.0.0.1:{cluster.config.invalidator.port}/-/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return {}


async def _version_served(http, cluster: ClusterStack, auth, user: int) -> tuple[int, str]:
    async with http.get(f"{cluster.proxy_url}/users/{user}", headers=auth) as resp:
        if resp.status != 200:  # a 503 while the services leave a killed node
            return -1, ""
        return (await resp.json())["version"], resp.headers.get("Cache-Status", "")


async def test_the_invalidator_sees_a_write_on_any_node_and_moves_on_when_its_node_dies(
        cluster: ClusterStack) -> None:
    bound = cluster.config.invalidator.lag_bound + cluster.config.invalidator.check_interval
    assert await poll(lambda: _async(_invalidator(cluster).get("following") is True), 30)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        users = [await register(http, cluster.proxy_url, f"cdc{i}") for i in range(3)]
        auth = users[0][1]

        async def cached(user: int) -> bool:
            return "hit" in (await _version_served(http, cluster, auth, user))[1]
        for user, _ in users:  # every profile a hit: the gateway trusts the cache
            assert await poll(lambda u=user: cached(u), 15)
        # A write made in SQL on each node, none through the gateway: each is served new within the bound.
        for node, (user, _) in enumerate(users):
            cluster.query(node, "UPDATE users SET title = %s, version = version + 1 WHERE id = %s",
                          (f"on-n{node + 1}", user))
            version = cluster.query(node, "SELECT version FROM users WHERE id = %s", (user,))[0][0]

            async def served(u=user, v=version) -> bool:
                return (await _version_served(http, cluster, auth, u))[0] == v
            assert await poll(served, bound, interval=0.01), f"a write on node {node + 1} was not seen"

        # One GTID sequence on every node (domain 1, the bootstrap node's id): a position read on one node
        # means the same transactions on another.
        def cluster_gtids() -> set[str]:
            return {",".join(g for g in cluster.query(i, "SELECT @@gtid_binlog_pos")[0][0].split(",")
                             if g.startswith("1-")) for i in range(3)}
        assert await poll(lambda: _async(len(cluster_gtids()) == 1), 10), cluster_gtids()
        assert next(iter(cluster_gtids())).startswith("1-1-")

        # The invalidator's node killed while writes go on through the others: it follows another node
        # from its GTID position (the same on every node), and every change is applied.
        unit = cluster.database()
        followed = _invalidator(cluster)["node"]
        victim = next(n for n in unit.cluster.nodes if f"{n.address.host}:{n.address.port}" == followed)
        others = [i for i, n in enumerate(unit.cluster.nodes) if n is not victim]
        victim.kill()
        expected: dict[int, int] = {}
        for round_ in range(10):
            for user, _ in users:
                node = others[round_ % len(others)]
                cluster.query(node, "UPDATE users SET title = %s, version = version + 1 WHERE id = %s",
                              (f"r{round_}", user))
                expected[user] = cluster.query(node, "SELECT version FROM users WHERE id = %s", (user,))[0][0]

        async def moved() -> bool:
            state = _invalidator(cluster)
            return state.get("following") is True and state.get("node") != followed
        assert await poll(moved, 60), _invalidator(cluster)
        for user, version in expected.items():
            async def current(u=user, v=version) -> bool:
                found, cache = await _version_served(http, cluster, auth, u)
                return found == v and "hit" in cache and "fwd=" not in cache
            assert await poll(current, 30), (user, version, await _version_served(http, cluster, auth, user))


async def _async(value: bool) -> bool:
    return value
