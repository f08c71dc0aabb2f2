"""The invalidator's part of config.yaml: its process (`invalidator:`) and its rules (`invalidations:`).

A rule names a table and what a change of one of its rows invalidates: keys rendered from the row's columns
with the routes' key templates, tags, and (for users) the tokens it revokes. Each key must be one a route
reads (same fixed text, placeholders in the same places), each plain tag one a route carries: a rule that
names nothing the gateway caches would invalidate nothing, silently. Whether a placeholder is a column of
the table is learnt from the binary log's own column names when the invalidator first sees the table (it
has only replication grants, so it cannot read the schema beforehand); a rule naming a column the table
lacks stops it there, and the gateway bypasses the affected routes as soon as the lag bound passes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cachegate.errors import ConfigError
from cachegate.located import place_of
from cachegate.routes import RouteConfig
from cachegate.settings import PROCESS, derived, read_secret, setting
from cachegate.templates import RowRenderer, compile_row_template, key_shape
from cachegate.values import REQUIRED, Section

_TABLE = re.compile(r"[A-Za-z0-9_]{1,64}")
_READS = frozenset({"GET", "HEAD"})


class _Everything(frozenset):
    """Contains everything: the rules of an invalidator that is off are not matched with the routes."""
    def __contains__(self, item: object) -> bool:
        return True


_ANY = _Everything()
DEFAULT_USER = "cachegate_cdc"


@dataclass(frozen=True, slots=True)
class InvalidatorConfig:
    """The `cachegate invalidator` process: where its metrics listen, how it logs in to MariaDB (a user with
    only the replication grants), and when the gateway stops trusting the cache because it fell behind."""
    enabled: bool = setting("invalidator.enabled", PROCESS)
    host: str = setting("invalidator.host", PROCESS)
    port: int = setting("invalidator.port", PROCESS)
    user: str = setting("invalidator.user", PROCESS)
    password_file: Path | None = setting("invalidator.password_file", PROCESS)
    server_id: int = setting("invalidator.server_id", PROCESS)  # its id as a replica: unique per server
    lag_bound: float = setting("invalidator.lag_bound", PROCESS)
    probe_interval: float = setting("invalidator.probe_interval", PROCESS)
    heartbeat: float = setting("invalidator.heartbeat", PROCESS)
    check_interval: float = setting("invalidator.check_interval", PROCESS)  # the gateway's read of the lag
    password_env: str | None = derived(default=None, repr=False)

    def password(self) -> str:
        """The environment (CACHEGATE_CDC_PASSWORD) wins over the file, read on call."""
        if self.password_env:
            return self.password_env
        if self.password_file is None:
            raise ConfigError("invalidator.password_file: no password given "
                              "(set it or CACHEGATE_CDC_PASSWORD)")
        return read_secret(self.password_file, "invalidator.password_file")


@dataclass(frozen=True, slots=True)
class Revokes:
    """A row of this table is a user: deleting it, or raising its token version, voids the user's tokens."""
    user: str      # the column holding the user id (the tokens' sub)
    version: str   # the column holding the token version (the tokens' tv)


@dataclass(frozen=True, slots=True)
class InvalidationRule:
    index: int
    table: str
    keys: tuple[str, ...]
    tags: tuple[str, ...]
    version: str | None          # the row's version column; None: the table has none (unfenced drops)
    revokes: Revokes | None
    place: str = field(compare=False)  # where it was read (config.yaml:42): no part of what it does
    renderers: tuple[RowRenderer, ...] = field(compare=False, repr=False, default=())
    tag_renderers: tuple[RowRenderer, ...] = field(compare=False, repr=False, default=())
    columns: frozenset[str] = field(compare=False, default=frozenset())  # every column the rule reads


def read_invalidator(s: Section, root: Path, env: Any) -> InvalidatorConfig:
    cfg = InvalidatorConfig(
        enabled=s.boolean("enabled", True), host=s.string("host", "127.0.0.1"), port=s.port("port", 8890),
        user=s.string("user", DEFAULT_USER), password_file=s.path("password_file", root, None),
        server_id=s.integer("server_id", 4201, low=1, high=2**32 - 1),
        lag_bound=s.duration("lag_bound", 2.0), probe_interval=s.duration("probe_interval", 0.1),
        heartbeat=s.duration("heartbeat", 1.0), check_interval=s.duration("check_interval", 0.2),
        password_env=env.get("CACHEGATE_CDC_PASSWORD") or None)
    for key, low in (("probe_interval", 0.01), ("heartbeat", 0.1), ("check_interval", 0.01)):
        if getattr(cfg, key) < low:
            s.fail(f"expected at least {low * 1000:g}ms, got {getattr(cfg, key):g}s", key)
    if cfg.lag_bound < 2 * cfg.probe_interval or cfg.lag_bound < cfg.check_interval:
        s.fail(f"must exceed 2 x probe_interval and check_interval, got {cfg.lag_bound:g}s", "lag_bound")
    s.done()
    return cfg


def read_invalidations(data: Any, label: str, routes: tuple[RouteConfig, ...], *, enabled: bool = True,
                       place: str | None = None) -> tuple[InvalidationRule, ...]:
    """The rules, each checked against the routes while the invalidator is on: its keys must be read by a
    route, its plain tags carried by one (off, the rules are checked alone: a config that keeps them for
    later, with other routes, still loads). Placeholders are column names (checked against the table when
    the invalidator sees it)."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError(f"{place or label}: invalidations: expected a list of rules")
    shapes = {key_shape(r.key) for r in routes if r.key is not None and r.methods and _READS & set(r.methods)}
    tags = {t for r in routes for t in r.tags}
    if not enabled:
        shapes, tags = _ANY, _ANY
    rules = [_read_rule(item, i, label, place_of(data, i) or place or label, shapes, tags)
             for i, item in enumerate(data)]
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.table in seen:
            raise ConfigError(f"{rule.place}: invalidations[{rule.index}].table: {rule.table} has a rule "
                              f"already ({seen[rule.table]}); give a table one rule")
        seen[rule.table] = rule.place
    return tuple(rules)


def _read_rule(item: Any, index: int, label: str, place: str, shapes: set[str],
               tags: set[str]) -> InvalidationRule:
    s = Section(item, f"invalidations[{index}]", label, place)
    table = s.string("table", REQUIRED)
    if not _TABLE.fullmatch(table):
        s.fail(f'expected a table name (letters, digits, _), got "{table}"', "table")
    keys, rule_tags = s.strings("keys"), s.strings("tags")
    version = s.string("version", "version")
    revokes_section = s.section("revoke_tokens")
    revokes = None
    if revokes_section.data:
        revokes = Revokes(revokes_section.string("user", REQUIRED),
                          revokes_section.string("version", REQUIRED))
    revokes_section.done()
    s.done()
    if not keys and not rule_tags and revokes is None:
        s.fail("names no keys, tags or revoke_tokens: it would invalidate nothing")
    renderers, tag_renderers, columns = [], [], set()
    for key in keys:
        try:
            render, used = compile_row_template(key)
        except ValueError as exc:
            s.fail(str(exc), "keys")
        if key_shape(key) not in shapes:
            s.fail(f'no route reads the key "{key}" (a GET rule with a key of this shape): it would '
                   "invalidate nothing", "keys")
        renderers.append(render)
        columns.update(used)
    for tag in rule_tags:
        try:
            render, used = compile_row_template(tag)
        except ValueError as exc:
            s.fail(str(exc).replace("key", "tag", 1), "tags")
        # A tag with placeholders is one an upstream names (Cache-Tag: user-42), unknown until it answers.
        if not used and tag not in tags:
            s.fail(f'no route carries the tag "{tag}"; known: {", ".join(sorted(tags)) or "none"}', "tags")
        tag_renderers.append(render)
        columns.update(used)
    if version.lower() == "none":
        version_column: str | None = None
    elif re.fullmatch(r"[a-z_][a-z0-9_]*", version):
        version_column = version
        columns.add(version)
    else:
        s.fail(f'expected a column name or none, got "{version}"', "version")
    if revokes is not None:
        columns.update((revokes.user, revokes.version))
    return InvalidationRule(index, table, keys, rule_tags, version_column, revokes, place, tuple(renderers),
                            tuple(tag_renderers), frozenset(columns))


def affected_routes(routes: Iterable[RouteConfig], rules: Iterable[InvalidationRule]) -> frozenset[int]:
    """The read routes whose entries the rules invalidate (by key shape or by a plain tag): what the
    gateway stops trusting while the invalidator is behind by more than its bound."""
    rules = list(rules)
    shapes = {key_shape(k) for rule in rules for k in rule.keys}
    tags = {t for rule in rules for t in rule.tags}
    found = set()
    for route in routes:
        if route.key is None or not _READS & set(route.methods):
            continue
        if key_shape(route.key) in shapes or tags & set(route.tags):
            found.add(route.index)
    return frozenset(found)
