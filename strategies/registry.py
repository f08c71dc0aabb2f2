"""The strategy registry: the built-in strategies by name, plugins from the cachegate.strategies entry points.

STRATEGIES is the explicit table (Starlette's CONVERTOR_TYPES is the model); `register_strategy` adds one
and refuses a name taken already. REGISTRY is what the proxy and `check-config` hand to config validation:
a read-only view that looks at other packages' entry points for a name it does not know yet.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Iterator, Mapping

from cachegate.errors import ConfigError
from strategies.base import Strategy, is_strategy
from strategies.passthrough import Passthrough
from strategies.read_through import ReadThrough
from strategies.write_through import WriteThrough

ENTRY_POINT_GROUP = "cachegate.strategies"
STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Passthrough, ReadThrough, WriteThrough)}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Make a strategy known by its `name` (also usable as a class decorator); a taken name is refused."""
    known = STRATEGIES.get(cls.name)
    if known is not None and known is not cls:
        raise ConfigError(f"strategy {cls.name!r} is registered already "
                          f"({known.__module__}.{known.__qualname__})")
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    """The class registered under `name`, looking at other packages' entry points if needed."""
    found = REGISTRY.get(name)
    if found is None:
        raise ConfigError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    return found


def _load_plugin(name: str) -> type[Strategy] | None:
    """The strategy declared as `name` under [options.entry_points] cachegate.strategies, registered now.

    Only the entry point of a name the registry does not know is loaded (config validation asks for it),
    so a built-in is never replaced and a broken plugin nobody uses breaks nothing."""
    points = [p for p in entry_points(group=ENTRY_POINT_GROUP) if p.name == name]
    if not points:
        return None
    if len(points) > 1:
        declared = ", ".join(p.value for p in points)
        raise ConfigError(f"strategy plugin {name!r} is declared twice ({declared})")
    point = points[0]
    plugin = f"{point.name!r} ({point.value})"
    try:
        cls = point.load()
    except Exception as exc:  # a broken plugin is a config problem, reported with its name
        raise ConfigError(f"strategy plugin {plugin} failed to load: {exc}") from exc
    if not is_strategy(cls, name):
        raise ConfigError(f"strategy plugin {plugin} is not a Strategy named {name!r}")
    return register_strategy(cls)


class _Registry(Mapping[str, type[Strategy]]):
    """STRATEGIES as config validation sees it: a name it does not know is looked up among the plugins."""

    def __getitem__(self, name: str) -> type[Strategy]:
        found = STRATEGIES.get(name)
        if found is None:
            found = _load_plugin(name)
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(dict(STRATEGIES))

    def __len__(self) -> int:
        return len(STRATEGIES)


REGISTRY: Mapping[str, type[Strategy]] = _Registry()
