"""The rules a strategy puts on its route at config load: a lifetime needs a key to live under."""
from __future__ import annotations

from cachegate.routes import RouteConfig
from strategies.registry import get_strategy


def _rule(strategy: str, **options: object) -> RouteConfig:
    fields = dict(index=0, methods=("GET",), path="/items", upstream="items", strategy=strategy, auth="none",
                  key=None, ttl=None, negative_ttl=None, grace=None, scope="shared", tags=(), invalidates=())
    return RouteConfig(**{**fields, **options})  # type: ignore[arg-type]


def _failures(strategy: str, **options: object) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    get_strategy(strategy).check_route(_rule(strategy, **options),
                                       lambda why, option: found.append((option, why)))
    return found


NO_KEY = "is the lifetime of the entry stored under key; this rule has no key"


def test_a_keyless_rule_may_not_name_a_lifetime() -> None:
    for option in ("ttl", "grace"):
        found = _failures("write-through", methods=("POST",), **{option: 30.0})
        assert found == [(option, f"{option} {NO_KEY}")], found


def test_a_keyless_rule_without_lifetimes_passes() -> None:
    assert _failures("write-through", methods=("POST",)) == []
