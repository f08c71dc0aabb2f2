"""What a request would do and what the cache holds for it: its rule, its key, the entry (cachegate explain).

`resolve` takes the steps a request takes (proxy/handler.py): the canonical target, the router's first
match, the key rendered from the same parameters and query, the same bypass rules; so explain and purge by
URL name exactly the entry a request would read. `explain` adds the store's view of that entry, read whole
from its record (proxy/records.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from proxy.canonical import canonical_target
from proxy.errors import CachegateError, RequestError
from proxy.router import Match, Router, cache_bypass, render_invalidations
from proxy.store import CacheStore, Inspected


class NeedsCaller(RequestError):
    """The rule's key names its caller: explain or purge needs one (the user id a token would carry)."""
    code = "caller_required"


@dataclass(frozen=True, slots=True)
class Resolved:
    method: str
    path: str            # decoded, as the router matched it
    upstream_target: str  # path and query exactly as they would go upstream
    query: str
    match: Match
    key: str | None      # None: the rule stores nothing, or names its caller and none was given
    invalidates: tuple[str, ...]
    bypass: str | None   # why the cache would be bypassed (CACHE-OFF, QUERY-NOT-IN-KEY), None when it is used


def resolve(router: Router, method: str, target: str, caller: str | None, *, cache_enabled: bool,
            need_key: bool = False, invalidator_behind: bool = False) -> Resolved:
    """A request's route and key as the handler would find them; the request's own 4xx error when it would
    be refused before the cache (BadPath, NotFound, MethodNotAllowed); NeedsCaller when `need_key` and the
    key names a caller that was not given."""
    method = method.upper()
    path, wire_path, query = canonical_target(target)
    match = router.resolve(method, path)
    route = match.route
    if route.config.scope == "caller" and caller is None:
        if need_key:
            raise NeedsCaller(f"the key of {route.name} ({route.config.key}) names its caller; give one "
                              "(the user id a token of the request would carry)")
        key, invalidates = None, ()
    else:
        key = route.key(match.params, query, caller) if route.key else None
        invalidates = render_invalidations(route, match.params, query, caller) if route.invalidates else ()
    if need_key and key is None:
        raise RequestError(f"{route.name} stores nothing ({route.config.strategy}): no key to purge")
    return Resolved(method, path, wire_path + ("?" + query if query else ""), query, match, key, invalidates,
                    cache_bypass(route, method, query, cache_enabled, invalidator_behind))


async def explain(router: Router, store: CacheStore, method: str, target: str, caller: str | None, *,
                  cache_enabled: bool, invalidator_behind: bool = False) -> dict[str, Any]:
    """The whole story of one request, as JSON: refused (with the error it would get), or its rule, key and
    what the store holds under the key now."""
    try:
        found = resolve(router, method, target, caller, cache_enabled=cache_enabled,
                        invalidator_behind=invalidator_behind)
    except CachegateError as exc:
        return {"request": {"method": method.upper(), "target": target},
                "refused": {"status": exc.status, "code": exc.code, "message": exc.message}}
    cfg = found.match.route.config
    rule = {"index": cfg.index, "name": cfg.name, "strategy": cfg.strategy, "upstream": cfg.upstream,
            "auth": cfg.auth, "scope": cfg.scope, "key": cfg.key, "params": found.match.params,
            "ttl": cfg.ttl, "negative_ttl": cfg.negative_ttl, "grace": cfg.grace, "tags": list(cfg.tags),
            "invalidates": list(found.invalidates)}
    out: dict[str, Any] = {
        "request": {"method": found.method, "target": target, "path": found.path,
                    "upstream_target": found.upstream_target},
        "rule": rule, "key": found.key,
        "cache": "bypass: " + found.bypass if found.bypass else "used"}
    if found.key is None:
        out["entry"] = None
        if cfg.scope == "caller" and cfg.key:
            out["note"] = "the key names its caller: give one to see the entry"
        return out
    inspected = await store.inspect(found.key, cfg.tags)
    out["entry"] = entry_view(inspected, time.time())
    out["tag_generations"] = dict(zip(cfg.tags, inspected.generations))
    return out


def entry_view(found: Inspected, now: float) -> dict[str, Any]:
    """The record under a key as an operator reads it: what kind, which version, how old, how long left."""
    record = found.record
    if record is None:
        return {"state": "absent", "current_epoch": found.epoch}
    view: dict[str, Any] = {"state": record.kind, "version_floor": record.floor, "epoch": record.epoch,
                            "current_epoch": found.epoch, "size": record.size,
                            "expires_in": _rounded(found.expires_in)}
    entry = record.entry
    if entry is not None:
        view.update(status=entry.status, version=entry.version, age=_rounded(now - entry.stored_at),
                    fresh_for=_rounded(max(0.0, entry.fresh_until - now)),
                    stale_for=_rounded(max(0.0, entry.stale_until - max(now, entry.fresh_until))),
                    body_size=len(entry.body), tags=list(entry.tags), headers=dict(entry.headers))
        if record.epoch != found.epoch:
            view["served"] = "no: an entry of an older epoch (a miss)"
        elif now < entry.fresh_until:
            view["served"] = "yes: fresh (a hit)"
        elif now < entry.stale_until:
            view["served"] = "yes: stale, within grace (served while one request refreshes it)"
        else:
            view["served"] = "no: expired"
    elif record.kind == "fence":
        live = [deadline for _, deadline in record.writers if deadline > found.redis_ms]
        view["writes_in_flight"] = len(live)
        view["fenced_for"] = _rounded(max(live, default=found.redis_ms) / 1000 - found.redis_ms / 1000)
        view["served"] = "no: a write is in flight (reads go upstream, nothing is stored)" if live else \
            "no: a fence whose writes ended (the next read reopens it and fills)"
    elif record.kind == "tombstone":
        view["served"] = f"no: deleted at version {record.floor} (nothing older may be stored)"
    else:
        view["served"] = "no: dropped (a miss; fills that looked before the drop are refused)"
    return view


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
