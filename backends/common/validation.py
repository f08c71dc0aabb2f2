"""Small validators for request bodies and query strings.

Status codes follow one rule: a body that is not JSON is 415 (wrong Content-Type) or 400 (malformed,
which includes a duplicate key and a lone surrogate escape); JSON that parses but does not fit the schema
(wrong type, length, shape, unknown field) is 422; a bad query string is 400.
"""
from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from backends.common.errors import ApiError, bad_request, unprocessable

# Python's \s and the \s of the regex engines that read docs/openapi.yaml (ECMA, Rust) differ only on
# control characters and U+FEFF; excluding those explicitly makes the pattern mean the same everywhere.
# The document carries this very pattern (a test compares them).
EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f-\x9f\ufeff]+@[^@\s.\x00-\x1f\x7f-\x9f\ufeff]+"
                      r"(\.[^@\s.\x00-\x1f\x7f-\x9f\ufeff]+)+")
MAX_ID = 10**18 - 1
# An id in a route: 1..18 digits (always inside BIGINT UNSIGNED) and no leading zero, so that each
# entity has one URL and so one cache key at the proxy (/users/007 would be a second, never refreshed).
ID_ROUTE = "{id:[1-9][0-9]{0,17}}"
# RFC 3339 date-time (docs/openapi.yaml says `format: date-time`); fromisoformat alone takes more forms.
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class Str:
    min_len: int = 1
    max_len: int = 200
    pattern: re.Pattern[str] | None = None
    hint: str = ""

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise unprocessable(f"{name}: expected a string")
        if not self.min_len <= len(value) <= self.max_len:
            raise unprocessable(f"{name}: expected {self.min_len}..{self.max_len} characters,"
                                f" got {len(value)}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise unprocessable(f"{name}: expected {self.hint or 'a different shape'}")
        return value


def Email() -> Str:  # noqa: N802 - reads like a field type in schemas
    return Str(3, 254, EMAIL_RE, "an email address like name@example.com")


@dataclass(frozen=True)
class Int:
    minimum: int = 1
    maximum: int = MAX_ID

    def check(self, name: str, value: Any) -> int:
        # bool is an int in Python, never in a JSON schema.
        if not isinstance(value, int) or isinstance(value, bool):
            raise unprocessable(f"{name}: expected an integer")
        if not self.minimum <= value <= self.maximum:
            raise unprocessable(f"{name}: expected {self.minimum}..{self.maximum}, got {value}")
        return value


@dataclass(frozen=True)
class DateTime:
    """An ISO 8601 time with a zone (`2025-06-01T09:00:00Z`); returned as naive UTC for DATETIME columns."""

    def check(self, name: str, value: Any) -> datetime:
        shape = f"{name}: expected an RFC 3339 time with a zone, like 2025-06-01T09:00:00Z or ...+02:00"
        if not isinstance(value, str) or len(value) > 40 or not _RFC3339.fullmatch(value):
            raise unprocessable(shape)
        # Python 3.11 reads at most microseconds and only an upper-case T and Z.
        text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", value.upper())
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise unprocessable(shape) from None
        try:
            utc = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # past year 9999 or before year 1 once in UTC
            raise unprocessable(f"{name}: year out of range (1970..9999 in UTC)") from None
        if not 1970 <= utc.year <= 9999:
            raise unprocessable(f"{name}: year out of range (1970..9999 in UTC)")
        return utc


Field = Str | Int | DateTime
Schema = Mapping[str, Field]


async def read_json(request: web.Request) -> Any:
    """The parsed JSON body; 415 when it is not declared JSON, 400 when it does not parse."""
    ctype = request.content_type
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise ApiError(415, "unsupported_media_type", "expected Content-Type: application/json")
    raw = await request.read()  # aiohttp raises 413 past client_max_size
    if not raw.strip():
        raise bad_request("empty request body")
    try:
        # Decoded here, strictly: json.loads(bytes) would guess UTF-16 or UTF-32 and let UTF-8-encoded
        # surrogates through ('surrogatepass'). A leading BOM is tolerated.
        text = raw.decode("utf-8-sig")
        body = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "malformed_json", f"malformed JSON body: {str(exc)[:120]}") from None
    # Now only a \u escape can make a surrogate, and a valid pair becomes one character: any left is
    # alone, and UTF-8 (scrypt, the database driver) can not encode it.
    if "\\u" in text and _has_lone_surrogate(body):
        raise ApiError(400, "malformed_json", "malformed JSON body: a \\u escape names a lone surrogate")
    return body


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object hook refusing a key given twice: json.loads would keep the last, another parser the first."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key[:40]!r}")
        obj[key] = value
    return obj


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]  # a loop, not recursion: the body may nest as deep as the parser allowed
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def validate(body: Any, schema: Schema, *, optional: Collection[str] = (),
             partial: bool = False) -> dict[str, Any]:
    """Check a JSON object against a schema (unknown and missing fields, each value); 422 on a fault.

    `optional` names fields that may be left out; with `partial` every field may be left out but
    at least one must be present.
    """
    if not isinstance(body, dict):
        raise unprocessable("expected a JSON object")
    unknown = sorted(set(body) - set(schema))
    if unknown:
        raise unprocessable(f"unknown field(s): {', '.join(unknown)}")
    if partial:
        if not body:
            raise unprocessable(f"expected at least one of: {', '.join(schema)}")
    else:
        missing = [name for name in schema if name not in body and name not in optional]
        if missing:
            raise unprocessable(f"missing field(s): {', '.join(missing)}")
    return {name: schema[name].check(name, value) for name, value in body.items()}


def check_query(request: web.Request, allowed: Collection[str]) -> None:
    """400 for an unknown or repeated query parameter: each one is part of a cache key."""
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise bad_request(f"unknown query parameter(s): {', '.join(unknown)}")
    for name in request.query:
        if len(request.query.getall(name)) > 1:
            raise bad_request(f"query parameter {name} given more than once")


def query_str(request: web.Request, name: str, *, max_len: int = 200) -> str | None:
    """The value of a text parameter, None when absent; an empty one is refused, never read as absent."""
    value = request.query.get(name)
    if value is not None and not 1 <= len(value) <= max_len:
        raise bad_request(f"{name}: expected 1..{max_len} characters")
    return value


def query_int(request: web.Request, name: str, *, default: int,
              minimum: int = 0, maximum: int = MAX_ID) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 18 or not minimum <= int(value) <= maximum:
        raise bad_request(f"{name}: expected an integer in {minimum}..{maximum}")
    return int(value)


def page(request: web.Request, *, default_limit: int = 20, max_limit: int = 100) -> tuple[int, int]:
    """`limit` and `offset` of a list request."""
    limit = query_int(request, "limit", default=default_limit, minimum=1, maximum=max_limit)
    offset = query_int(request, "offset", default=0, minimum=0, maximum=1_000_000)
    return limit, offset


def path_id(request: web.Request, name: str = "id") -> int:
    # Routes use ID_ROUTE (1..18 digits), so this always fits in BIGINT UNSIGNED.
    return int(request.match_info[name])


def like_prefix(text: str) -> str:
    """A LIKE pattern matching `text` literally as a prefix (escape character `!`)."""
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped + "%"
