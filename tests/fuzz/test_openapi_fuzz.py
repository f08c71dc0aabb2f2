"""Property-based fuzzing of every operation in docs/openapi.yaml, through the live proxy (schemathesis).

One world per tag (real services on MariaDB, the real proxy on Redis), seeded with two users, a path and
a trip so that generated requests reach the entities and not only 404; a hand-made happy case per
operation must succeed first. Deterministic for a given selection of tests: a fixed seed and derandomized
Hypothesis (which also mixes in a few constants from the modules loaded, so another selection may draw
some other values; a failure prints its curl command either way).
"""
from __future__ import annotations

import asyncio
import time

import pytest
import yaml

from cachegate.tokens import TokenIssuer
from tests.fuzz.fuzz_helpers import (SPEC, UNAUTHENTICATED, Findings, Target, needs_token, operations,
                                     run_all, written_rows_match)

pytestmark = pytest.mark.slow

TAGS = ("auth", "users", "paths", "trips")
# Destructive operations last: deleting the seeded user would leave the others little to find.
LAST = {"DELETE /users/{id}"}


def test_every_documented_operation_is_fuzzed_once():
    documented = {(method.upper(), path) for path, item in yaml.safe_load(SPEC.read_text())["paths"].items()
                  for method in item if method in ("get", "put", "post", "patch", "delete")}
    fuzzed = [(op.method.upper(), op.path) for tag in TAGS for op in operations(tag)]
    assert sorted(fuzzed) == sorted(documented)


@pytest.mark.parametrize("tag", TAGS)
async def test_fuzz_operations_through_the_proxy(seeded, tag):
    issuer = TokenIssuer(seeded.world.config.auth)
    expired = issuer.issue(seeded.user_id, 1, now=time.time() - 24 * 3600).access_token
    target = Target(
        base_url=seeded.base_url,
        callers={"own": {"Authorization": seeded.bearer}, "other": {"Authorization": seeded.other_bearer},
                 "none": {}, "garbage": {"Authorization": "Bearer not.a.token"},
                 "expired": {"Authorization": f"Bearer {expired}"}},
        ids={"users": [seeded.user_id, seeded.other_id], "paths": [seeded.path_id],
             "trips": [seeded.trip_id]},
        known_paths={seeded.path_id},
        credentials={"login": seeded.login, "password": seeded.password},
        logins={"own": seeded.login, "other": seeded.other_login},
        served=lambda: sum(n for (_, path), n in seeded.world.backends.counts.items() if path != "/-/health"),
    )
    findings = Findings()
    ops = operations(tag)
    # schemathesis sends with requests (blocking); the world's servers run on this test's loop.
    await asyncio.to_thread(run_all, ops, target, findings, lambda op: op.label in LAST)
    statuses = ", ".join(f"{label} {status}: {n}" for (label, status), n in sorted(findings.statuses.items()))
    assert not findings.seen, "\n" + findings.report() + "\n" + statuses
    assert not findings.blocked(ops), statuses
    if any(needs_token(op) for op in ops):  # the token rule was put to each caller without a valid token
        assert all(findings.refused[caller] > 0 for caller in UNAUTHENTICATED), findings.refused
    # Never lost or half-written: what the API acknowledged is in MariaDB, and the proxy serves it.
    assert findings.written or tag == "auth"
    # Read back as a user of its own: the seeded ones may have deleted themselves or changed their password.
    _, auditor = await seeded.world.user("auditor")
    wrong = await written_rows_match(seeded.base_url, auditor, findings.written, findings.deleted,
                                     seeded.world.config)
    assert not wrong, wrong
