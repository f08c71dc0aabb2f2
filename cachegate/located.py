"""YAML read with the place of every node: a SafeLoader that refuses duplicate keys and keeps line numbers.

A mapping comes back as a `Located` dict and a list as a `LocatedList`; both remember where each of their
keys or items came from, a line of the file or an environment variable, so that an error about a value can
point at it. They are plain dicts and lists otherwise: whatever reads them needs to know nothing of this.
"""
from __future__ import annotations

from typing import Any

import yaml

from cachegate.errors import ConfigError

MERGE = "tag:yaml.org,2002:merge"


class Located(dict):
    """A mapping that knows its own place and the place of each of its keys."""

    def __init__(self, *args: Any, place: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.place = place                  # "config.yaml:12", or "environment CACHEGATE__REDIS__URL"
        self.places: dict[Any, str] = {}   # key -> the place of its value

    def place_of(self, key: Any) -> str | None:
        return self.places.get(key, self.place)


class LocatedList(list):
    """A list that knows its own place and the place of each item."""

    def __init__(self, *args: Any, place: str | None = None) -> None:
        super().__init__(*args)
        self.place = place
        self.places: list[str | None] = []

    def place_of(self, index: int) -> str | None:
        return self.places[index] if 0 <= index < len(self.places) else self.place


def place_of(node: Any, key: Any = None) -> str | None:
    """Where `node[key]` (or `node` itself, without a key) came from, if it was read from a located source."""
    if key is not None and isinstance(node, (Located, LocatedList)):
        return node.place_of(key)
    return getattr(node, "place", None)


def load_located(text: str, label: str) -> Any:
    """Parse YAML text; a key given twice in one mapping is a ConfigError naming both lines."""

    class Loader(yaml.SafeLoader):
        pass

    def line(node: yaml.Node) -> str:
        return f"{label}:{node.start_mark.line + 1}"

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode):
        data = Located(place=line(node))
        yield data
        first: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE:  # merged keys may be overridden: that is what a merge is for
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                earlier = first.get(key)
            except TypeError:
                continue  # an unhashable key: construct_mapping refuses it below
            if earlier is not None:
                raise ConfigError(f"{line(key_node)}: duplicate key {key!r}; it is first given at line "
                                  f"{earlier.start_mark.line + 1}, and a second one would silently replace it")
            first[key] = key_node
        data.update(loader.construct_mapping(node, deep=True))
        data.places = {key: line(key_node) for key, key_node in first.items()}

    def sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode):
        data = LocatedList(place=line(node))
        yield data
        data.extend(loader.construct_sequence(node, deep=True))
        data.places = [line(item) for item in node.value]

    Loader.add_constructor("tag:yaml.org,2002:map", mapping)
    Loader.add_constructor("tag:yaml.org,2002:seq", sequence)
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def located_copy(value: Any) -> Any:
    """A deep copy of plain mappings and lists as Located ones without places (a config given as a dict)."""
    if isinstance(value, dict):
        out = Located({k: located_copy(v) for k, v in value.items()}, place=getattr(value, "place", None))
        out.places = dict(getattr(value, "places", {}))
        return out
    if isinstance(value, (list, tuple)):
        items = LocatedList([located_copy(v) for v in value], place=getattr(value, "place", None))
        items.places = list(getattr(value, "places", [None] * len(items)))
        return items
    return value
