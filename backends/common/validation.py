"""Small validators for request bodies and query strings.

Status codes follow one rule: a body that is not JSON is 415 (wrong Content-Type) or 400 (malformed);
JSON that parses but does not fit the schema (wrong type, length, shape, unknown field) is 422; a bad
query string is 400.
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

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
MAX_ID = 10**18 - 1  # route patterns accept at most 18 digits: always inside BIGINT UNSIGNED


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
        if not isinstance(value, str) or len(value) > 40:
            raise unprocessable(f"{name}: expected an ISO 8601 time like 2025-06-01T09:00:00Z")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise unprocessable(f"{name}: expected an ISO 8601 time like 2025-06-01T09:00:00Z") from None
        if parsed.tzinfo is None:
            raise unprocessable(f"{name}: the time needs a zone, e.g. Z or +02:00")
        utc = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        if not 1970 <= utc.year <= 9999:
            raise unprocessable(f"{name}: year out of range")
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
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "malformed_json", f"malformed JSON body: {str(exc)[:120]}") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


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
    value = request.query.get(name)
    if value is not None and len(value) > max_len:
        raise bad_request(f"{name}: at most {max_len} characters")
    return value


def query_int(request: web.Request, name: str, *, default: int,
              minimum: int = 0, maximum: int = MAX_ID) -> int:
    value = request.query.get(name)
    if value is None or value == "":
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
    # Route patterns admit 1..18 digits only, so this always fits in BIGINT UNSIGNED.
    return int(request.match_info[name])


def like_prefix(text: str) -> str:
    """A LIKE pattern matching `text` literally as a prefix (escape character `!`)."""
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped + "%"
