"""Schemathesis plumbing of the fuzz tests: the document, the checks, the callers and one bounded run.

Every generated request goes to the live proxy with one of several callers (the seeded user, another
user, no token, garbage, an expired token). The checks are schemathesis' own (no 5xx, documented status,
content type, headers and body schema, valid data accepted, invalid data refused) plus the error shape
of docs/architecture.md on every 4xx, documented or not, and the token rule: on an operation that needs a
token, a caller without a valid one is refused (401) and its request reaches no service. Each mode of each
operation must have generated requests (only an operation with nothing to negate has no negative ones).
"""
from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import SkipTest

import aiohttp
import requests
import schemathesis
import yaml
from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi import checks as oc

from backends.common.db import connect
from tests.fuzz.fuzz_checks import breaks_a_prose_rule, error_shape

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SEED = 20300601
# Examples per operation and mode: 18 operations x 2 modes take ~40 s on 2 cores.
EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 20}
CALLERS = ("own", "own", "own", "other", "none", "garbage", "expired")
UNAUTHENTICATED = ("none", "garbage", "expired")  # no token, a token that is no JWT, a signed one past exp
# What the proxy refuses before it authenticates: a target it cannot decode (400), no rule for the path
# (404), a method the path's rules do not take (405). A generated negative path parameter may do that.
BEFORE_AUTH = (400, 404, 405)

COMMON_CHECKS = [not_a_server_error, oc.status_code_conformance, oc.content_type_conformance,
                 oc.response_headers_conformance, oc.response_schema_conformance]
CHECKS = {GenerationMode.POSITIVE: [*COMMON_CHECKS, oc.positive_data_acceptance],
          GenerationMode.NEGATIVE: [*COMMON_CHECKS, oc.negative_data_rejection]}


@functools.cache
def load_schema() -> Any:
    config = schemathesis.Config.from_dict({
        # The callers' tokens are ours to choose (CALLERS): no generated Authorization headers.
        "generation": {"with-security-parameters": False},
        # 412 is the documented answer to a generated If-Match that names another version.
        "checks": {"positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "412"]}},
    })
    return schemathesis.openapi.from_path(SPEC, config=config)


@functools.cache
def _document() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())


def _raw(op: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operation's and its path item's objects in the document."""
    item = _document()["paths"][op.path]
    return item[op.method.lower()], item


def needs_token(op: Any) -> bool:
    """The document's security for the operation (its own, else the global one) has no `{}` alternative."""
    raw, _ = _raw(op)
    return not any(alternative == {} for alternative in raw.get("security", _document().get("security", [])))


def nothing_to_negate(op: Any) -> bool:
    """No parameter and no body: a negative case of this operation cannot exist."""
    raw, item = _raw(op)
    return not raw.get("parameters") and not item.get("parameters") and "requestBody" not in raw


def operations(tag: str) -> list[Any]:
    found = [result.ok() for result in load_schema().get_all_operations()]
    return [op for op in found if tag in op.definition.raw.get("tags", ())]


@dataclass
class Findings:
    """What a run saw: distinct failures (one curl per operation, failure and status), the statuses
    each operation answered to generated requests, and the writes the API acknowledged."""

    seen: dict[tuple[str, str, int], str] = field(default_factory=dict)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    written: dict[str, int] = field(default_factory=dict)  # entity URL -> highest acknowledged version
    deleted: set[str] = field(default_factory=set)
    generated: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, mode) -> requests
    refused: Counter[str] = field(default_factory=Counter)  # caller -> requests held to the token rule

    def record(self, case: Any, response: Any, *, generated: bool = True) -> None:
        if generated:
            self.statuses[(case.operation.label, response.status_code)] += 1
        # A token is not an entity; every other unsafe operation answers with one (or a deletion).
        if case.method.upper() == "GET" or case.operation.path == "/auth/token":
            return
        if not 200 <= response.status_code < 300:
            return
        body = response.json()
        url = "/" + case.operation.path.strip("/").split("/")[0] + f"/{body['id']}"
        if case.method.upper() == "DELETE":
            self.deleted.add(url)
        else:
            self.written[url] = max(self.written.get(url, 0), body["version"])

    def unauthenticated(self, case: Any, response: Any, caller: str, reached: int,
                        headers: dict[str, str]) -> None:
        """A caller without a valid token on an operation that needs one: 401, and no service saw it."""
        self.refused[caller] += 1
        status = response.status_code
        if reached or (status != 401 and status not in BEFORE_AUTH):
            key = (case.operation.label, f"{caller} caller not refused", status)
            if key not in self.seen:
                curl = case.as_curl_command(headers=headers)
                self.seen[key] = (f"{caller} caller not refused [{status}], {reached} request(s) reached a "
                                  f"service: {response.text[:200]}\n    {curl}")

    def blocked(self, ops: list[Any]) -> list[str]:
        """Operations whose generated requests never got past authentication (all 401)."""
        past = {label for (label, status), _ in self.statuses.items() if status != 401}
        return sorted(op.label for op in ops if op.label not in past)

    def add(self, case: Any, response: Any, group: FailureGroup | Failure, headers: dict[str, str]) -> None:
        failures = group.exceptions if isinstance(group, FailureGroup) else (group,)
        for failure in failures:
            key = (case.operation.label, failure.title, response.status_code)
            if key not in self.seen:
                curl = case.as_curl_command(headers=headers)
                self.seen[key] = f"{failure.title} [{response.status_code}] {response.text[:200]}\n    {curl}"

    def report(self) -> str:
        return "\n".join(f"{label}: {text}" for (label, _, _), text in sorted(self.seen.items()))


@dataclass(frozen=True)
class Target:
    """Where and as whom to send: the proxy's base URL, the callers' headers and the ids worth hitting."""

    base_url: str
    callers: dict[str, dict[str, str]]
    ids: dict[str, list[int]]  # first path segment ("users", ...) -> ids of existing entities
    known_paths: set[int]
    credentials: dict[str, str]  # {"login", "password"} of a registered user
    logins: dict[str, str] = field(default_factory=dict)  # caller -> its login, for callers that are users
    served: Callable[[], int] = lambda: 0  # requests the services have received so far (health probes aside)

    def renew_after_password_change(self, caller: str, case: Any, response: Any,
                                    session: requests.Session) -> None:
        """A new password voids the caller's older tokens (the one it used included): sign in again, as a
        client would, so later requests of that caller are not all 401."""
        body = case.body if isinstance(case.body, dict) else {}
        succeeded = 200 <= response.status_code < 300
        changed = case.method.upper() in ("PUT", "PATCH") and "password" in body and succeeded
        if not changed or caller not in self.logins:
            return
        answer = session.post(f"{self.base_url}/auth/token", timeout=10,
                              json={"login": self.logins[caller], "password": body["password"]})
        assert answer.status_code == 200, answer.text
        self.callers[caller]["Authorization"] = "Bearer " + answer.json()["access_token"]
        if self.logins[caller] == self.credentials["login"]:
            self.credentials["password"] = body["password"]


def happy_case(op: Any, target: Target) -> tuple[Any, str]:
    """One hand-made request per operation that must succeed (case, caller): every operation answers
    2xx at least once, whatever the generated cases happen to reach."""
    (user, other), (path,), (trip,) = target.ids["users"], target.ids["paths"], target.ids["trips"]
    profile = {"first_name": "Happy", "last_name": "Tester", "email": "happy@example.com", "title": "t"}
    times = {"starts_at": "2031-01-01T09:00:00Z", "finishes_at": "2031-01-01T11:00:00+01:00"}
    made: dict[str, tuple[dict[str, Any], str]] = {
        "POST /auth/token": ({"body": dict(target.credentials)}, "none"),
        "POST /users": ({"body": {"login": "happy", "password": "happy-password", **profile}}, "none"),
        "GET /users": ({"query": {"login": target.credentials["login"]}}, "own"),
        "GET /users/me": ({}, "own"),
        "GET /users/search": ({"query": {"last_name": "Test", "limit": 5}}, "own"),
        "GET /users/{id}": ({"path_parameters": {"id": other}}, "own"),
        "PUT /users/{id}": ({"path_parameters": {"id": user}, "body": profile}, "own"),
        "PATCH /users/{id}": ({"path_parameters": {"id": user}, "body": {"title": "patched"}}, "own"),
        "DELETE /users/{id}": ({"path_parameters": {"id": user}}, "own"),
        "POST /paths": ({"body": {"start_point": "Happy", "end_point": "Valley"}}, "own"),
        "GET /paths/search": ({"query": {"start": "Ash"}}, "own"),
        "GET /paths/{id}": ({"path_parameters": {"id": path}}, "own"),
        "POST /trips": ({"body": {"path_id": path, "name": "Happy trip", **times}}, "own"),
        "GET /trips": ({"query": {"owner": user}}, "own"),
        "GET /trips/{id}": ({"path_parameters": {"id": trip}}, "own"),
        "PUT /trips/{id}": ({"path_parameters": {"id": trip}, "body": {"path_id": path, "name": "Renamed",
                                                                        **times}}, "own"),
        "POST /trips/{id}/members": ({"path_parameters": {"id": trip}}, "other"),
        "GET /trips/{id}/members": ({"path_parameters": {"id": trip}}, "own"),
    }
    kwargs, caller = made[op.label]
    return op.Case(**kwargs), caller


def check(case: Any, response: Any, checks: list[Any], findings: Findings, headers: dict[str, str]) -> None:
    """Run the checks on one answer; failures go to the findings."""
    try:
        case.validate_response(response, checks=checks, additional_checks=[error_shape], headers=headers)
    except (FailureGroup, Failure) as exc:
        findings.add(case, response, exc, headers)


def send_happy_case(op: Any, target: Target, findings: Findings, session: requests.Session) -> None:
    case, caller = happy_case(op, target)
    headers = target.callers[caller]
    response = case.call(base_url=target.base_url, headers=headers, session=session, timeout=10)
    findings.record(case, response, generated=False)
    if not 200 <= response.status_code < 300:
        findings.seen[(op.label, "happy case refused", response.status_code)] = (
            f"happy case refused [{response.status_code}] {response.text[:200]}")
    check(case, response, CHECKS[GenerationMode.POSITIVE], findings, headers)


def fuzz_operation(op: Any, mode: GenerationMode, target: Target, findings: Findings,
                   session: requests.Session) -> None:
    """Send EXAMPLES[mode] generated requests for one operation and record what the checks find."""
    resource = op.path.strip("/").split("/")[0]
    known = target.ids.get(resource, [])
    positive = mode == GenerationMode.POSITIVE
    guarded = needs_token(op)

    @seed(SEED)
    @settings(max_examples=EXAMPLES[mode], derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate])  # every health check on: none is needed off
    @given(case=op.as_strategy(generation_mode=mode), caller=st.sampled_from(CALLERS),
           entity=st.sampled_from(known) if known else st.none(), aim=st.booleans())
    def run(case: Any, caller: str, entity: int | None, aim: bool) -> None:
        # Only a positive case may be aimed at an existing entity: a negative one may be negative
        # precisely in the parameter that would be replaced.
        if positive and aim and entity is not None:
            if "id" in (case.path_parameters or {}):
                case.path_parameters["id"] = entity
            if isinstance(case.body, dict) and "path_id" in case.body and target.known_paths:
                case.body["path_id"] = min(target.known_paths)
        if positive and aim and op.label == "POST /auth/token" and isinstance(case.body, dict):
            case.body = dict(target.credentials)
        headers = dict(target.callers[caller])
        findings.generated[(op.label, mode.value)] += 1
        before = target.served()
        response = case.call(base_url=target.base_url, headers=headers, session=session, timeout=10)
        findings.record(case, response)
        if guarded and caller in UNAUTHENTICATED:
            findings.unauthenticated(case, response, caller, target.served() - before, headers)
        target.renew_after_password_change(caller, case, response, session)
        checks = list(CHECKS[mode])
        if positive and breaks_a_prose_rule(case, target.known_paths):
            checks.remove(oc.positive_data_acceptance)
        check(case, response, checks, findings, headers)

    try:
        run()
    except SkipTest:
        # Hypothesis told to run no case skips the test it runs in: this whole tag's test would pass as
        # skipped with nothing sent. Nothing sent is a failure here.
        raise AssertionError(f"{op.label}: Hypothesis ran no {mode.value} case") from None
    except Unsatisfiable:
        # Only an operation without parameters or body has no negative case; anything else is a
        # generator that silently sends nothing.
        assert not positive and nothing_to_negate(op), f"{op.label}: no {mode.value} case could be generated"
        return
    assert findings.generated[(op.label, mode.value)] > 0, f"{op.label}: no {mode.value} case was sent"


def run_all(ops: list[Any], target: Target, findings: Findings, order: Callable[[Any], int]) -> None:
    """Send each operation's happy case, then fuzz it in both modes, in `order` (blocking: call it in
    a thread)."""
    with requests.Session() as session:
        for op in sorted(ops, key=order):
            send_happy_case(op, target, findings, session)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz_operation(op, mode, target, findings, session)


async def written_rows_match(base_url: str, bearer: str, written: dict[str, int], deleted: set[str],
                             config: Any) -> list[str]:
    """Each acknowledged write is in MariaDB (at its version or later), and the proxy serves the row's
    version exactly; each acknowledged delete left no row and reads 404. Returns what is wrong."""
    wrong = []
    conn = await connect(config.mariadb)
    try:
        async with aiohttp.ClientSession(base_url, headers={"Authorization": bearer}) as http:
            for url in sorted(set(written) | deleted):
                table, entity_id = url.strip("/").split("/")
                async with conn.cursor() as cur:
                    await cur.execute(f"SELECT version FROM {table} WHERE id = %s", (int(entity_id),))
                    row = await cur.fetchone()
                async with http.get(url) as resp:
                    served = (await resp.json()).get("version") if resp.status == 200 else resp.status
                if url in deleted:
                    if row is not None or served != 404:
                        wrong.append(f"{url}: deleted, yet row {row} and proxy answer {served}")
                elif row is None or row[0] < written[url] or served != row[0]:
                    wrong.append(f"{url}: acknowledged v{written[url]}, row {row}, proxy serves {served}")
    finally:
        conn.close()
    return wrong
