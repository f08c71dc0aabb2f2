"""The real store with its version checks cut out of its Lua scripts: to show a test catches their absence.

`without_version_checks(monkeypatch)` makes every gateway the test then creates build its store this way:
the same CacheStore, the same scripts, but a write or a fill older than the version the key has already seen
is stored instead of refused. Each cut must match the scripts exactly once, so a change to them fails the
test that uses this loudly instead of leaving the checks in place unnoticed. Nothing of the product knows
of it: it replaces the script text a store hands to its Redis client, in the test's process only.
"""
from __future__ import annotations

from typing import Any

import pytest

import proxy.app

# (script, the line that refuses an older version): write-through's settle, and a read-through fill.
CUTS = (
    ("write.lua", "if version < floor then refused = 'older' end\n"),
    ("fill.lua", "if version > 0 and version < floor then return 'older' end\n"),
)


def without_version_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, stores are built with CUTS removed; returns the cuts made (filled as stores are built)."""
    made: list[str] = []
    build = proxy.app.make_store

    def make_store(config: Any, redis: Any, *args: Any, **kwargs: Any) -> Any:
        register = redis.register_script

        def cut(text: str) -> Any:
            for name, line in CUTS:
                if line in text:
                    assert text.count(line) == 1, f"{name}: the check is there more than once"
                    text = text.replace(line, "")
                    made.append(name)
            return register(text)

        redis.register_script = cut
        try:
            store = build(config, redis, *args, **kwargs)
        finally:
            del redis.register_script  # the instance attribute goes; the client's own method is back
        missing = [name for name, _ in CUTS if name not in made]
        assert not missing, f"no version check found in {missing}: update tests/support/unarbitrated.py"
        return store

    monkeypatch.setattr(proxy.app, "make_store", make_store)
    return made
