"""HTTP caching rules as pure functions: what may be stored and how long, ETags, Cache-Status."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Mapping

from multidict import CIMultiDict

# What an entry keeps of a response: enough to answer a GET and a conditional GET, nothing per-connection
# or per-client (Set-Cookie responses are never stored at all). Via (with the gateway already in it, from
# proxy/upstream.py) is kept so that a hit says it came through the gateway at no cost per request.
STORED_HEADERS = ("Content-Type", "ETag", "Last-Modified", "Cache-Control", "Via")
# A 304 repeats the validators and the caching headers only (RFC 9110 15.4.5).
NOT_MODIFIED_HEADERS = ("ETag", "Cache-Control", "Last-Modified")
CACHEABLE_STATUSES = frozenset({200, 203})
NEGATIVE_STATUSES = frozenset({404})
SAFE_METHODS = frozenset({"GET", "HEAD"})
CONDITIONAL_HEADERS = frozenset({"if-none-match", "if-modified-since", "if-match", "if-unmodified-since",
                                 "if-range"})
CACHE_NAME = "cachegate"
UNAVAILABLE = "CACHE-UNAVAILABLE"  # the detail of a bypass because Redis is down, slow or behind its breaker

_ETAG_VERSION = re.compile(r'^(?:W/)?"(\d{1,18})"$')
_DIRECTIVE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?\s*(?:,|$)')


@dataclass(frozen=True, slots=True)
class Decision:
    """May a response be stored, and for how many seconds. `ttl` is 0 when not, with the reason why."""
    ttl: float
    reason: str = ""

    @property
    def store(self) -> bool:
        return self.ttl > 0


def cache_control(value: str) -> dict[str, str | None]:
    """'no-store, max-age=60' -> {'no-store': None, 'max-age': '60'}; names lowercased, quotes removed."""
    out: dict[str, str | None] = {}
    for m in _DIRECTIVE.finditer(value or ""):
        if not m.group(1):
            continue
        arg = m.group(2)
        if arg is not None and arg.startswith('"'):
            arg = arg[1:-1]
        out.setdefault(m.group(1).lower(), arg)
    return out


def decide(status: int, headers: Mapping[str, str], *, ttl: float, negative_ttl: float) -> Decision:
    """Whether a shared cache may store this upstream response (safe defaults, as Varnish's builtin.vcl)."""
    if status in CACHEABLE_STATUSES:
        limit = ttl
    elif status in NEGATIVE_STATUSES:
        limit = negative_ttl
    else:
        return Decision(0, f"status-{status}")
    if "Set-Cookie" in headers:
        return Decision(0, "set-cookie")
    if "Vary" in headers:  # the key cannot tell representations apart
        return Decision(0, "vary")
    if "Content-Encoding" in headers:  # entries keep one identity representation only
        return Decision(0, "content-encoding")
    directives = cache_control(headers.get("Cache-Control", ""))
    for refused in ("no-store", "private", "no-cache"):
        if refused in directives:
            return Decision(0, refused)
    for name in ("s-maxage", "max-age"):
        if name in directives:
            seconds = _seconds(directives[name])
            if seconds is None:
                return Decision(0, f"bad-{name}")
            limit = min(limit, seconds)
            break
    if limit <= 0:
        return Decision(0, "ttl-0")
    return Decision(limit)


def _seconds(value: str | None) -> float | None:
    if value is None or not value.isdigit():
        return None
    return float(value)


def version_from_etag(etag: str | None) -> int:
    """'"7"' or 'W/"7"' -> 7; anything else (no ETag, an opaque one) -> 0, meaning no version."""
    if not etag:
        return 0
    m = _ETAG_VERSION.match(etag.strip())
    return int(m.group(1)) if m else 0


def version_of(headers: Mapping[str, str], body: bytes) -> int:
    """The entity version of a response: its ETag, else a top-level integer "version" in a JSON body."""
    version = version_from_etag(headers.get("ETag"))
    if version or not body.lstrip().startswith(b"{"):
        return version
    try:
        found = json.loads(body).get("version")
    except (ValueError, AttributeError):
        return 0
    return found if isinstance(found, int) and not isinstance(found, bool) and found > 0 else 0


def etag_matches(if_none_match: str | None, etag: str | None) -> bool:
    """If-None-Match against one ETag, with the weak comparison RFC 9110 13.1.2 asks for."""
    if not if_none_match or not etag:
        return False
    if if_none_match.strip() == "*":
        return True
    mine = _opaque(etag)
    return any(_opaque(candidate) == mine for candidate in if_none_match.split(","))


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def stored_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The headers an entry keeps, each once (values of a repeated one joined, as RFC 9110 5.3 allows)."""
    found = []
    for name in STORED_HEADERS:
        if name in headers:
            values = headers.getall(name) if hasattr(headers, "getall") else [headers[name]]
            found.append((name, ", ".join(values)))
    return found


def unconditional(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The request headers without validators: a fill must fetch the full entity, never a 304."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in CONDITIONAL_HEADERS)


def cache_status(*, hit: bool = False, fwd: str | None = None, fwd_status: int | None = None,
                 ttl: float | None = None, stored: bool = False, collapsed: bool = False,
                 detail: str | None = None) -> str:
    """One Cache-Status member (RFC 9211), e.g. 'cachegate; fwd=miss; fwd-status=200; stored'."""
    parts = [CACHE_NAME]
    if hit:
        parts.append("hit")
    if fwd is not None:
        parts.append(f"fwd={fwd}")
    if fwd_status is not None:
        parts.append(f"fwd-status={fwd_status}")
    if ttl is not None:
        parts.append(f"ttl={math.floor(ttl)}")  # stale by a fraction of a second is already negative
    if stored:
        parts.append("stored")
    if collapsed:
        parts.append("collapsed")
    if detail:
        parts.append(f"detail={detail}")
    return "; ".join(parts)
