"""The gateway's Redis ACL covers every command its Lua scripts call (Redis checks those against it too)."""
from __future__ import annotations

import re
from pathlib import Path

import proxy.store
from stack.redis_acl import GATEWAY_COMMANDS, gateway_rules

LUA = Path(proxy.store.__file__).with_name("lua")


def test_every_command_of_the_lua_scripts_is_in_the_gateway_acl() -> None:
    called = {name.lower() for path in LUA.glob("*.lua")
              for name in re.findall(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]", path.read_text())}
    assert called, "no redis.call found: has the scripts' folder moved?"
    missing = sorted(called - set(GATEWAY_COMMANDS))
    assert not missing, f"add to GATEWAY_COMMANDS in stack/redis_acl.py: {missing}"


def test_the_rules_start_from_nothing() -> None:
    rules = gateway_rules().split()
    assert rules[:3] == ["~*", "&*", "-@all"]
    assert all(rule.startswith("+") and "@" not in rule for rule in rules[3:])  # commands, no categories
