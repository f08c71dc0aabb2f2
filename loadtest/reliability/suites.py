"""The bad-input and token-attack suites against the running stack: set-up, the requests, counts by kind."""
from __future__ import annotations

import secrets
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp
from jose import jwt

from loadtest.reliability import badinput, tokenattacks
from loadtest.reliability.ownstack import OwnStack, StackFailure
from loadtest.reliability.rawhttp import Verdict, run_cases
from loadtest.reliability.traffic import Population

PASSWORD = "reliability-" + "x" * 8


async def _json(http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    async with http.request(method, path, **kwargs) as resp:
        body = await resp.json(content_type=None)
        if not 200 <= resp.status < 300:
            raise StackFailure(f"suite set-up: {method} {path} answered {resp.status}: {body}")
        return body


async def _revoked(http: aiohttp.ClientSession) -> dict[str, tuple[int, str]]:
    """Two fresh users whose first tokens are void: one changed its password, one deleted itself."""
    out: dict[str, tuple[int, str]] = {}
    for how in ("password changed", "user deleted"):
        login = f"rel-{secrets.token_hex(4)}"
        user = await _json(http, "POST", "/users", json={
            "login": login, "password": PASSWORD, "first_name": "Revoked", "last_name": "Suite",
            "email": f"{login}@example.com", "title": ""})
        token = await _json(http, "POST", "/auth/token", json={"login": login, "password": PASSWORD})
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        await _json(http, "GET", "/users/me", headers=bearer)   # the token worked, and is remembered
        if how == "password changed":
            await _json(http, "PATCH", f"/users/{user['id']}", headers=bearer,
                        json={"password": PASSWORD + "2"})
        else:
            await _json(http, "DELETE", f"/users/{user['id']}", headers=bearer)
        out[f"revoked: {how}"] = (int(user["id"]), bearer["Authorization"])
    return out


async def run(stack: OwnStack, people: Population) -> dict[str, Any]:
    own, other = people.callers[0], people.callers[1]
    port = stack.config.proxy.port
    async with aiohttp.ClientSession(stack.proxy_url) as http:
        revoked = await _revoked(http)
        for _ in range(2):   # the cached read is warm: a hit must still need a valid token
            await _json(http, "GET", f"/users/{other.user_id}", headers={"Authorization": own.authorization})
    claims = jwt.get_unverified_claims(own.authorization.split(" ", 1)[1])
    keys = tokenattacks.Keys(Path(stack.config.auth.private_key).read_text(),
                             Path(stack.config.auth.public_key).read_text(), stack.config.auth.issuer,
                             own.user_id, int(claims["tv"]))
    bad = await run_cases(port, badinput.cases(user_id=own.user_id, bearer=own.authorization,
                                               path_id=people.paths[0], trip_id=people.trips[0]))
    attacks = await run_cases(port, tokenattacks.cases(keys=keys, valid=own.authorization,
                                                       other_id=other.user_id, revoked=revoked))
    return {"bad_input": summarize(bad), "token_attacks": summarize(attacks)}


def summarize(verdicts: list[Verdict]) -> dict[str, Any]:
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for v in verdicts:
        by_kind[v.kind][str(v.status) if v.status else "no answer"] += 1
    findings = [v.as_json() for v in verdicts if v.finding]
    return {"requests": len(verdicts), "by_kind": {k: dict(sorted(c.items())) for k, c in by_kind.items()},
            "statuses": dict(sorted(Counter(str(v.status) for v in verdicts).items())),
            "codes": dict(Counter(v.code or "-" for v in verdicts).most_common()),
            "findings": findings, "cases": [v.as_json() for v in verdicts]}
