"""Reading one mapping of config.yaml: typed values, each error naming its place, unknown keys refused."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from cachegate.errors import ConfigError
from cachegate.located import place_of

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
               "KB": 1000, "MB": 1000**2, "GB": 1000**3}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class Section:
    """One mapping being read: remembers its place and which keys were used, so unknown keys are refused.

    Errors start with where the offending value came from: `config.yaml:42` when it was read from a file
    (cachegate/located.py), `environment CACHEGATE__REDIS__URL` when an override set it, else the label.
    """

    def __init__(self, data: Any, where: str, label: str, place: str | None = None) -> None:
        self.where, self.label = where, label
        self.place = place or place_of(data)
        self.data: Any = {}
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail(f"expected a mapping, got {_show(data)}")
        self.data, self.used = data, set()

    def origin(self, key: str | None = None) -> str:
        """Where the value of `key` (or this mapping) came from, as an error starts with it."""
        return (place_of(self.data, key) if key is not None else None) or self.place or self.label

    def fail(self, reason: str, key: str | None = None) -> None:
        place = f"{self.where}.{key}" if key and self.where else (key or self.where)
        raise ConfigError(f"{self.origin(key)}: {place}: {reason}")

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key in self.data and self.data[key] is not None:
            return self.data[key]
        if default is REQUIRED:
            self.fail("is required", key)
        return default

    def section(self, key: str) -> Section:
        self.used.add(key)
        where = f"{self.where}.{key}" if self.where else key
        return Section(self.data.get(key), where, self.label, place_of(self.data, key) or self.place)

    def value(self, key: str, convert: Callable[[Any], Any], expected: str, default: Any = None) -> Any:
        raw = self._get(key, default)
        if raw is default and default is not REQUIRED:
            return default
        try:
            return convert(raw)
        except (TypeError, ValueError):
            self.fail(f"expected {expected}, got {_show(raw)}", key)

    def string(self, key: str, default: Any = None) -> Any:
        return self.value(key, as_str, "a string", default)

    def integer(self, key: str, default: Any = None, *, low: int = 0, high: int = 2**31) -> Any:
        return self.value(key, lambda v: as_int(v, low, high), f"an integer from {low} to {high}", default)

    def port(self, key: str, default: Any = None) -> Any:
        return self.value(key, lambda v: as_int(v, 1, 65535), "a port number from 1 to 65535", default)

    def duration(self, key: str, default: Any = None) -> Any:
        return self.value(key, parse_duration, "a duration like 30s", default)

    def size(self, key: str, default: Any = None) -> Any:
        return self.value(key, parse_size, "a size like 1MiB", default)

    def boolean(self, key: str, default: Any = None) -> Any:
        return self.value(key, as_bool, "true or false", default)

    def choice(self, key: str, choices: tuple[str, ...], default: Any = None) -> Any:
        def convert(v: Any) -> str:
            if v not in choices:
                raise ValueError
            return v
        return self.value(key, convert, "one of " + ", ".join(choices), default)

    def names(self, key: str) -> tuple[str, ...]:
        def convert(v: Any) -> tuple[str, ...]:
            if not isinstance(v, list) or not all(isinstance(x, str) and _NAME.match(x) for x in v):
                raise ValueError
            return tuple(v)
        return self.value(key, convert, "a list of names (lowercase letters, digits, - _ .)", ())

    def strings(self, key: str) -> tuple[str, ...]:
        def convert(v: Any) -> tuple[str, ...]:
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise ValueError
            return tuple(v)
        return self.value(key, convert, "a list of strings", ())

    def path(self, key: str, root: Path, default: Any = None) -> Any:
        raw = self.string(key, default)
        if raw is None:
            return None
        p = Path(raw).expanduser()
        return p if p.is_absolute() else root / p

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used, key=str)
        if unknown:
            known = ", ".join(sorted(self.used))
            self.fail(f"unknown key (known: {known})", str(unknown[0]))


REQUIRED = object()


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return repr(value)


def as_str(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError
    return v


def as_int(v: Any, low: int, high: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ValueError
    return v


def as_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("on", "off"):
        return v.lower() == "on"
    raise ValueError


def parse_duration(v: Any) -> float:
    """'50ms', '30s', '5m', '1h' or a bare number of seconds -> seconds."""
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, (int, float)):
        if v < 0:
            raise ValueError
        return float(v)
    m = _DURATION.match(v) if isinstance(v, str) else None
    if not m:
        raise ValueError
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_size(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, int):
        if v <= 0:
            raise ValueError
        return v
    m = _SIZE.match(v) if isinstance(v, str) else None
    if not m:
        raise ValueError
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def parse_percent(v: Any) -> float:
    if isinstance(v, str) and v.strip().endswith("%"):
        v = float(v.strip()[:-1]) / 100
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise ValueError
    return float(v)
