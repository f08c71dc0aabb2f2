"""The route table: first whole-path match wins, typed parameters, 404 and 405 with Allow, safe keys."""
from __future__ import annotations

import pytest

from cachegate.config import load_config
from cachegate.templates import compile_key_template, parse_path_template
from proxy.canonical import canonical_query
from proxy.errors import MethodNotAllowed, NotFound
from proxy.router import Router


def routes(*rules: dict) -> Router:
    data = {"redis": {"url": "redis://127.0.0.1:1/0"},
            "proxy": {"admin": {"token_file": "admin-token"}},  # required, read only by the admin listener
            "mariadb": {"database": "x", "user": "x"},
            "auth": {"public_key": "k.pem", "private_key": "k"},
            "upstreams": {"users": "http://127.0.0.1:1"},
            "routes": [{"upstream": "users", "strategy": "passthrough", **r} for r in rules]}
    return Router(load_config(data, env={}).routes)


def test_first_matching_rule_wins_by_order():
    router = routes({"methods": ["GET"], "path": "/users/me"}, {"methods": ["GET"], "path": "/users/{name}"})
    assert router.resolve("GET", "/users/me").route.config.index == 0
    assert router.resolve("GET", "/users/bob").params == {"name": "bob"}


def test_whole_path_only_never_a_substring():
    router = routes({"methods": ["GET"], "path": "/users/{id:int}"})
    for path in ("/users/1/x", "/api/users/1", "/users/1x", "/users/", "/users"):
        with pytest.raises(NotFound):
            router.resolve("GET", path)


def test_int_parameter_is_typed():
    router = routes({"methods": ["GET"], "path": "/users/{id:int}"})
    assert router.resolve("GET", "/users/42").params == {"id": "42"}
    with pytest.raises(NotFound):
        router.resolve("GET", "/users/abc")


def test_wrong_method_is_405_with_allow():
    router = routes({"methods": ["GET"], "path": "/users/{id:int}"},
                    {"methods": ["PUT", "DELETE"], "path": "/users/{id:int}"})
    with pytest.raises(MethodNotAllowed) as info:
        router.resolve("POST", "/users/1")
    assert info.value.headers["Allow"] == "DELETE, GET, HEAD, PUT"


def test_head_uses_the_get_rule():
    router = routes({"methods": ["GET"], "path": "/users/{id:int}"})
    assert router.resolve("HEAD", "/users/1").route.config.methods == ("GET",)


def test_key_renders_the_canonical_query():
    render, used = compile_key_template("s:{query}", ())
    assert used == {"query"}
    assert render({}, canonical_query("b=2&a=1"), None) == "s:a=1&b=2"
    assert render({}, canonical_query("a=1&b=2"), None) == "s:a=1&b=2"
    # a value can not forge a separator or another parameter
    assert render({}, canonical_query("a=1%26b%3D2"), None) == "s:a=1%26b%3D2"
    # the values of a repeated name keep their order: a service may take the first one
    assert render({}, canonical_query("a=2&a=1"), None) != render({}, canonical_query("a=1&a=2"), None)


def test_key_single_query_and_caller():
    render, _ = compile_key_template("u:{query.login}", ())
    assert render({}, canonical_query("login=al%3aice&x=1"), None) == "u:al%3Aice"
    assert render({}, canonical_query("login=a&login=b"), None) == "u:a,b"
    assert render({}, canonical_query("login=a%2Cb"), None) == "u:a%2Cb"
    # absent and empty are two requests
    assert render({}, canonical_query("login="), None) == "u:" != render({}, "", None)
    render, _ = compile_key_template("me:{caller}", ())
    assert render({}, "", "7") == "me:7"
    with pytest.raises(LookupError):
        render({}, "", None)


def test_static_template_has_no_regex():
    assert parse_path_template("/users/search").regex is None


def test_key_covers_only_the_query_parameters_it_names():
    read = {"methods": ["GET"], "strategy": "read-through"}
    router = routes({**read, "path": "/users/{id:int}", "key": "u:{id}"},
                    {**read, "path": "/users", "key": "l:{query.login}"},
                    {**read, "path": "/users/search", "key": "s:{query}"})
    by_id, by_login, search = router.routes
    assert by_id.key_covers("") and not by_id.key_covers("debug=1")
    assert by_login.key_covers("login=a") and not by_login.key_covers("login=a&x=1")
    assert by_login.key_covers(canonical_query("%6Cogin=a")) and not by_login.key_covers(canonical_query("x"))
    assert search.key_covers("anything=1&else=2")
