"""What the nodes of a Redis Cluster say about themselves and each other, read into frozen records.

`parse_cluster_nodes` reads the text of `CLUSTER NODES` (and of a node's `nodes.conf`, which has the same
lines); `NodeStatus` is one node's own view (its role, the master it follows, its slots, its
`cluster_state`); `ClusterStatus.problems()` says why the cluster is not healthy, and `healthy` is the
launcher's readiness test. Roles and masters are always read from the nodes, never assumed from the order
the cluster was created in: `redis-cli --cluster create` shuffles which replica follows which master.
"""
from __future__ import annotations

from dataclasses import dataclass

SLOTS = 16384
# Flags of a node another node has given up on (`fail`) or suspects (`fail?`), or has not met yet.
_TROUBLE = frozenset({"fail", "fail?", "handshake", "noaddr"})


@dataclass(frozen=True)
class NodeLine:
    """One line of CLUSTER NODES: a node as the node that printed it sees it."""

    node_id: str
    address: str  # host:port, what clients connect to
    bus_port: int | None
    flags: frozenset[str]
    master_id: str | None  # the master a replica follows; None for a master
    link: str  # "connected" or "disconnected": the printing node's bus link to this one
    slots: tuple[tuple[int, int], ...]  # inclusive ranges; slots being migrated are left out

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def in_trouble(self) -> bool:
        return bool(self.flags & _TROUBLE)


def parse_cluster_nodes(text: str) -> list[NodeLine]:
    """The lines of CLUSTER NODES or nodes.conf (whose `vars ...` line is skipped)."""
    lines = []
    for raw in text.splitlines():
        fields = raw.split()
        if len(fields) < 8 or fields[0] == "vars":
            continue
        # 127.0.0.1:7001@17001 or, with a hostname announced, 127.0.0.1:7001@17001,host
        address, _, bus = fields[1].split(",", 1)[0].partition("@")
        slots = []
        for item in fields[8:]:
            if item.startswith("["):  # [slot->-id] / [slot-<-id]: a migration in progress
                continue
            first, _, last = item.partition("-")
            if first.isdigit() and (last.isdigit() or not last):
                slots.append((int(first), int(last or first)))
        lines.append(NodeLine(
            node_id=fields[0], address=address, bus_port=int(bus) if bus.isdigit() else None,
            flags=frozenset(fields[2].split(",")), master_id=None if fields[3] == "-" else fields[3],
            link=fields[7], slots=tuple(slots)))
    return lines


def parse_info(text: str) -> dict[str, str]:
    """`key:value` lines of CLUSTER INFO or INFO; comments and blank lines skipped."""
    pairs = {}
    for raw in text.splitlines():
        key, sep, value = raw.strip().partition(":")
        if sep and not key.startswith("#"):
            pairs[key] = value
    return pairs


def slot_count(ranges: tuple[tuple[int, int], ...]) -> int:
    return sum(last - first + 1 for first, last in ranges)


@dataclass(frozen=True)
class NodeStatus:
    """One node: its process, and (when it answers) what it says about itself and the cluster."""

    address: str
    pid: int | None
    up: bool  # answers the admin user
    node_id: str | None = None
    role: str | None = None  # "master" or "replica"
    master: str | None = None  # the address of the master a replica follows, as this replica sees it
    slots: tuple[tuple[int, int], ...] = ()
    master_link: str | None = None  # a replica's replication link: "up" or "down"
    cluster_state: str | None = None  # "ok" or "fail"
    known_nodes: int = 0
    in_trouble: tuple[str, ...] = ()  # nodes this one flags as failed, suspected or not yet met
    failed: tuple[str, ...] = ()  # of those, the ones the cluster has agreed are down (`fail`)
    links_down: tuple[str, ...] = ()  # nodes this one has no cluster-bus link to

    def describe(self) -> str:
        if not self.up:
            return f"{self.address} pid={self.pid or '-'} down"
        role = self.role or "?"
        if self.role == "replica":
            role += f" of {self.master} link={self.master_link}"
        elif self.slots:
            role += " slots=" + ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in self.slots)
        trouble = f" sees-failing={','.join(self.in_trouble)}" if self.in_trouble else ""
        return f"{self.address} pid={self.pid} up {role} cluster_state={self.cluster_state}{trouble}"


@dataclass(frozen=True)
class ClusterStatus:
    """Every node's own view; healthy when they all agree on a whole, linked, covered cluster."""

    nodes: tuple[NodeStatus, ...]
    masters_expected: int
    replicas_per_master: int

    @property
    def masters(self) -> tuple[NodeStatus, ...]:
        return tuple(n for n in self.nodes if n.up and n.role == "master" and n.slots)

    @property
    def replicas(self) -> tuple[NodeStatus, ...]:
        return tuple(n for n in self.nodes if n.up and n.role == "replica")

    def node(self, address: str) -> NodeStatus:
        return next(n for n in self.nodes if n.address == address)

    def owner(self, slot: int) -> NodeStatus | None:
        """The master that claims `slot` (by its own CLUSTER NODES line), or None."""
        return next((m for m in self.masters if any(a <= slot <= b for a, b in m.slots)), None)

    def replicas_of(self, master: NodeStatus) -> tuple[NodeStatus, ...]:
        return tuple(r for r in self.replicas if r.master == master.address)

    @property
    def healthy(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """Why the cluster is not (yet) healthy; empty when it is."""
        found = [f"{n.address} is down" for n in self.nodes if not n.up]
        for n in self.nodes:
            if not n.up:
                continue
            if n.cluster_state != "ok":
                found.append(f"{n.address} says cluster_state:{n.cluster_state}")
            if n.known_nodes != len(self.nodes):
                found.append(f"{n.address} knows {n.known_nodes} of {len(self.nodes)} nodes")
            if n.in_trouble:
                found.append(f"{n.address} sees {', '.join(n.in_trouble)} failing or not yet met")
            if n.role == "replica" and n.master_link != "up":
                found.append(f"{n.address} has its link to master {n.master} {n.master_link}")
        masters = self.masters
        if len(masters) != self.masters_expected:
            found.append(f"{len(masters)} masters hold slots, expected {self.masters_expected}")
        covered = sum(slot_count(m.slots) for m in masters)
        if covered != SLOTS:
            found.append(f"the masters claim {covered} slot(s) of {SLOTS}")
        if self.replicas_per_master:
            found += [f"master {m.address} has no replica" for m in masters if not self.replicas_of(m)]
        return found

    def lines(self) -> list[str]:
        return [n.describe() for n in self.nodes]
