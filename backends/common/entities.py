"""The write contract of docs/architecture.md: ETags from versions, If-Match, entity JSON and timestamps."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web


def iso(moment: datetime) -> str:
    """A naive UTC DATETIME column as ISO 8601 with a Z."""
    return moment.replace(tzinfo=None).isoformat() + "Z"


def etag(version: int) -> str:
    return f'"{version}"'


def if_match(request: web.Request) -> list[int] | None:
    """The versions an If-Match header accepts: None when absent or `*` (any current version).

    An ETag that is not one of ours (not a quoted integer) can never match, nor can a weak one
    (If-Match compares strongly, RFC 9110 13.1.1), so it adds nothing to the list; an empty list
    means the write must fail with 412.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    versions = []
    for tag in header.split(","):
        tag = tag.strip()
        inner = tag[1:-1]
        quoted = len(tag) >= 3 and tag[0] == tag[-1] == '"'
        if quoted and inner.isascii() and inner.isdigit() and len(inner) <= 10:
            versions.append(int(inner))
    return versions


def entity_response(body: dict[str, Any], *, status: int = 200, location: str | None = None,
                    tag: str | None = None) -> web.Response:
    """One entity as JSON with `ETag: "<version>"` (and `Location` for a 201). `tag` names the entity for
    the gateway's cache (Cache-Tag: the gateway indexes what it stores under it, and strips the header), so
    that one purge of the tag drops every cached view of it."""
    headers = {"ETag": etag(body["version"])}
    if location is not None:
        headers["Location"] = location
    if tag is not None:
        headers["Cache-Tag"] = tag
    return web.json_response(body, status=status, headers=headers)


def deleted_response(entity_id: int, version: int) -> web.Response:
    """A DELETE's answer: the version after the delete, so the proxy can keep a versioned tombstone."""
    return web.json_response({"id": entity_id, "version": version, "deleted": True},
                             headers={"ETag": etag(version)})


def list_response(items: list[dict[str, Any]], *, limit: int, offset: int, has_more: bool) -> web.Response:
    return web.json_response({"items": items, "limit": limit, "offset": offset, "has_more": has_more})
