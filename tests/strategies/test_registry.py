"""The strategy registry: built-ins by name, a helpful error, and plugins from the entry point group."""
from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from proxy.errors import ConfigError
from strategies.base import STRATEGIES, Strategy, get_strategy, known_strategies
from strategies.passthrough import Passthrough
from strategies.read_through import ReadThrough
from strategies.write_through import WriteThrough


def test_built_ins_are_registered_by_name() -> None:
    assert {"passthrough": Passthrough, "read-through": ReadThrough,
            "write-through": WriteThrough}.items() <= known_strategies().items()
    assert get_strategy("read-through") is ReadThrough


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
    assert "mirror" in known_strategies()


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
