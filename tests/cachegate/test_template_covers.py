"""`templates.covers`, which finds a rule an earlier one shadows: segment by segment, a literal only itself."""
from __future__ import annotations

from cachegate.templates import covers


def test_a_literal_covers_only_the_same_literal() -> None:
    assert covers("/users/me", "/users/me")
    assert not covers("/users/me", "/users/you")
    assert not covers("/users/me", "/users/{me}")        # a parameter of that name is any segment
    assert not covers("/users/me", "/users/{me:int}")


def test_a_parameter_covers_what_it_matches() -> None:
    assert covers("/users/{id}", "/users/me") and covers("/users/{id}", "/users/{other:int}")
    assert covers("/users/{id:int}", "/users/42") and not covers("/users/{id:int}", "/users/me")
    assert not covers("/users/{id:int}", "/users/{name}")
    assert not covers("/users/{id}", "/users/{id}/trips")
