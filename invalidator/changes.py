"""Row changes into cache actions through the config's rules: pure, so one change always means the same."""
from __future__ import annotations

from dataclasses import dataclass, field

from cachegate.errors import ConfigError
from cachegate.invalidations import InvalidationRule

INSERT, UPDATE, DELETE = "insert", "update", "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One row of a row event: `before` for UPDATE and DELETE, `after` for INSERT and UPDATE."""
    table: str
    kind: str
    before: dict | None
    after: dict | None


@dataclass(slots=True)
class Actions:
    """What a batch of changes asks of the cache; merged, so each key and tag is touched once per batch.

    A key keeps the highest version asked (the fence is a floor: a lower one would change nothing more)
    and whether that version is a deletion; a user keeps the highest token version revoked."""
    keys: dict[str, tuple[int, bool]] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    revocations: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys) + len(self.tags) + len(self.revocations)

    def key(self, name: str, version: int, deleted: bool) -> None:
        held = self.keys.get(name)
        if held is None or (version, deleted) > held:
            self.keys[name] = (version, deleted)

    def revoke(self, user: str, below: int) -> None:
        if below > self.revocations.get(user, 0):
            self.revocations[user] = below


class RuleError(ConfigError):
    """A rule names a column its table does not have (seen in the binary log's column names)."""


class Planner:
    """Applies the rules of config.yaml's `invalidations` to changes."""

    def __init__(self, rules: tuple[InvalidationRule, ...]) -> None:
        self.rules = {rule.table: rule for rule in rules}
        self._checked: set[str] = set()

    @property
    def tables(self) -> list[str]:
        return sorted(self.rules)

    def plan(self, change: Change, into: Actions) -> None:
        rule = self.rules.get(change.table)
        if rule is None:
            return
        row = change.after if change.after is not None else change.before
        if change.table not in self._checked:
            missing = sorted(rule.columns - set(row or ()))
            if missing:
                raise RuleError(f"{rule.place}: invalidations[{rule.index}]: table {rule.table} has no "
                                f"column "
                                f"{', '.join(missing)} (its columns: {', '.join(sorted(row or ()))})")
            self._checked.add(change.table)
        deleted = change.kind == DELETE
        # One version for both images of an UPDATE (the new one): a key the row moved away from must not
        # keep the old version's entry either.
        version = _version(rule, row, deleted)
        for image in (change.before, change.after):
            if image is None:
                continue
            for render in rule.renderers:
                into.key(render(image), version, deleted)
            for render in rule.tag_renderers:
                into.tags.add(render(image))
        if rule.revokes is not None:
            self._revocations(rule, change, into)

    @staticmethod
    def _revocations(rule: InvalidationRule, change: Change, into: Actions) -> None:
        user, column = rule.revokes.user, rule.revokes.version
        if change.kind == DELETE and change.before is not None:
            # No row: every token of the user is void, the last version included (as the users service says).
            into.revoke(str(change.before[user]), int(change.before[column]) + 1)
        elif change.kind == UPDATE and change.before is not None and change.after is not None:
            if int(change.after[column]) > int(change.before[column]):
                into.revoke(str(change.after[user]), int(change.after[column]))


def _version(rule: InvalidationRule, image: dict, deleted: bool) -> int:
    """The version a key is fenced at: the row's, or after a DELETE the one after it (the tombstone's, as
    the write-through's DELETE answers); 0 for a table without versions."""
    if rule.version is None:
        return 0
    value = image.get(rule.version)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return 0
    return value + 1 if deleted else value
