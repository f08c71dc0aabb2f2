"""docs/openapi.yaml matches what the services route and what the proxy forwards (no network needed)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from backends.paths.app import create_app as paths_app
from backends.trips.app import create_app as trips_app
from backends.users.app import PUBLIC
from backends.users.app import create_app as users_app
from cachegate.config import load_config
from stack.keys import ensure_jwt_keys

REPO = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
METHODS = ("get", "put", "post", "patch", "delete")
Operation = tuple[str, str]  # (METHOD, /path/{template})


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def documented() -> set[Operation]:
    return {(method, path) for method, path, _ in operations()}


def resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _lookup(node["$ref"])
    return node


def _lookup(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = SPEC
    for part in ref[2:].split("/"):
        node = node[part]
    return node


OPS_PREFIX = "/-/"   # each process's own operations views (a service's /-/health), not the proxied API


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> set[Operation]:
    """(method, canonical path) of every API route of the three service apps; HEAD comes with GET.

    Their `GET /-/health` is left out: at the proxy's address that path is the proxy's own, so it is not
    an operation of the API the spec describes (which says so); tests/backends/test_service_health.py
    has it."""
    keys = tmp_path_factory.mktemp("keys")
    ensure_jwt_keys(keys / "private.pem", keys / "public.pem")
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["auth"].update(public_key=str(keys / "public.pem"), private_key=str(keys / "private.pem"))
    data["routes"] = [{"methods": ["POST"], "path": "/auth/token", "upstream": "users",
                       "strategy": "passthrough", "auth": "none"}]
    data["invalidations"] = []  # the rules name keys of the routes left out
    config = load_config(data, base_dir=keys, env={})
    found = set()
    for make in (users_app, paths_app, trips_app):
        for route in make(config).router.routes():
            if route.method != "HEAD" and not route.resource.canonical.startswith(OPS_PREFIX):
                found.add((route.method, route.resource.canonical))
    return found


def test_every_documented_operation_is_served(served):
    assert documented() - served == set()


def test_every_service_route_is_documented(served):
    assert served - documented() == set()


def test_every_proxy_route_is_documented():
    routes = yaml.safe_load((REPO / "config.yaml").read_text())["routes"]
    proxied = {(method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", rule["path"]))
               for rule in routes for method in rule["methods"]}
    assert proxied - documented() == set()


def test_public_operations_are_exactly_the_unauthenticated_ones():
    public = {(m, p) for m, p, op in operations() if {} in op.get("security", SPEC["security"])}
    assert public == set(PUBLIC)
    for method, path, op in operations():
        if (method, path) not in public:
            assert "401" in op["responses"], (method, path)


def test_operations_are_complete_and_refs_resolve():
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))
    for method, path, op in operations():
        params = [resolve(p) for p in SPEC["paths"][path].get("parameters", []) + op.get("parameters", [])]
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)
        assert any(code.startswith("2") for code in op["responses"]), (method, path)
        for code, response in op["responses"].items():
            body = resolve(response)["content"]["application/json"]["schema"]
            if code.startswith("4"):
                assert resolve(body) is SPEC["components"]["schemas"]["Error"], (method, path, code)
        if "requestBody" in op:
            schema = resolve(op["requestBody"]["content"]["application/json"]["schema"])
            assert schema.get("additionalProperties") is False, (method, path)
    text = (REPO / "docs" / "openapi.yaml").read_text()
    for ref in set(re.findall(r'\$ref: "([^"]+)"', text)):
        assert _lookup(ref) is not None, ref
