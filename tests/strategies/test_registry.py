"""The strategy registry: built-ins by name, a helpful error, duplicates refused, plugins from the entry point
group, and a plugin's own rules applied by config validation."""
from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from cachegate.config import load_config
from cachegate.errors import ConfigError
from strategies.base import Strategy
from strategies.passthrough import Passthrough
from strategies.read_through import ReadThrough
from strategies.registry import REGISTRY, STRATEGIES, get_strategy, register_strategy
from strategies.write_through import WriteThrough

REPO = Path(__file__).resolve().parents[2]


def test_built_ins_are_registered_by_name() -> None:
    assert {"passthrough": Passthrough, "read-through": ReadThrough,
            "write-through": WriteThrough}.items() <= STRATEGIES.items()
    assert get_strategy("read-through") is ReadThrough
    assert set(REGISTRY) == set(STRATEGIES)


def test_a_name_is_registered_once() -> None:
    class Other(Passthrough):
        name = "read-through"

    with pytest.raises(ConfigError, match="'read-through' is registered already"):
        register_strategy(Other)
    assert STRATEGIES["read-through"] is ReadThrough
    register_strategy(ReadThrough)  # the same class again is no conflict


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        get_strategy("read-thru")
    assert caught.value.message == \
        "unknown strategy 'read-thru'; known: passthrough, read-through, write-through"


def _install_plugin(root: Path, module: str, body: str, points: str) -> None:
    """A distribution as pip would leave it: a module and a dist-info folder with entry_points.txt."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[cachegate.strategies]\n{points}\n")


@pytest.fixture
def plugin_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    before = dict(STRATEGIES)
    yield tmp_path
    STRATEGIES.clear()
    STRATEGIES.update(before)
    for name in [m for m in sys.modules if m.startswith("cg_plugin_")]:
        del sys.modules[name]


def test_a_plugin_strategy_comes_in_through_its_entry_point(plugin_root: Path) -> None:
    _install_plugin(plugin_root, "cg_plugin_ok", """
        from strategies.passthrough import Passthrough

        class Mirror(Passthrough):
            name = "mirror"
        """, "mirror = cg_plugin_ok:Mirror")
    found = get_strategy("mirror")
    assert issubclass(found, Strategy) and found.__module__ == "cg_plugin_ok"
    assert "mirror" in STRATEGIES


def test_a_plugin_brings_its_rules_to_config_validation(plugin_root: Path) -> None:
    """A plugin's class rules (methods, key, forbidden options) are checked like a built-in's."""
    _install_plugin(plugin_root, "cg_plugin_rules", """
        from types import MappingProxyType
        from strategies.passthrough import Passthrough

        class GetOnly(Passthrough):
            name = "get-only"
            methods = frozenset({"GET"})
            methods_rule = "serves only GET"
            forbidden = MappingProxyType({"invalidates": "get-only invalidates nothing"})
        """, "get-only = cg_plugin_rules:GetOnly")
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["routes"].append({"methods": ["GET"], "path": "/plugin", "upstream": "users",
                           "strategy": "get-only"})
    config = load_config(data, env={}, base_dir=REPO, strategies=REGISTRY)
    assert config.routes[-1].strategy == "get-only"
    data["routes"][-1]["methods"] = ["POST"]
    with pytest.raises(ConfigError, match=r"routes\[16\]\.methods: get-only serves only GET, got POST"):
        load_config(data, env={}, base_dir=REPO, strategies=REGISTRY)
    data["routes"][-1].update(methods=["GET"], invalidates=["tag:x"])
    with pytest.raises(ConfigError, match=r"routes\[16\]\.invalidates: get-only invalidates nothing"):
        load_config(data, env={}, base_dir=REPO, strategies=REGISTRY)


def test_a_plugin_never_replaces_a_built_in(plugin_root: Path) -> None:
    _install_plugin(plugin_root, "cg_plugin_clash", """
        from strategies.passthrough import Passthrough

        class Fake(Passthrough):
            name = "read-through"
        """, "read-through = cg_plugin_clash:Fake\nother = cg_plugin_clash:Fake")
    with pytest.raises(ConfigError, match="is not a Strategy named 'other'"):
        get_strategy("other")
    assert get_strategy("read-through") is ReadThrough


def test_a_broken_plugin_is_a_config_error_naming_it(plugin_root: Path) -> None:
    _install_plugin(plugin_root, "cg_plugin_broken", "raise RuntimeError('boom')\n",
                    "broken = cg_plugin_broken:X")
    with pytest.raises(ConfigError,
                       match=r"strategy plugin 'broken' \(cg_plugin_broken:X\) failed to load: boom"):
        get_strategy("broken")
