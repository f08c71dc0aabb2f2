"""Paths: create one (owned by the caller), read one, search by start point prefix."""
from __future__ import annotations

import re

from aiohttp import web

from backends.common.app import caller
from backends.common.db import DB_POOL
from backends.common.entities import entity_response, list_response
from backends.common.errors import bad_request, not_found, unprocessable
from backends.common.validation import (ID_ROUTE, Schema, Str, check_query, page, path_id, query_str,
                                        read_json, validate)
from backends.paths import repository as repo

routes = web.RouteTableDef()

POINT = Str(1, 200, re.compile(r"[^\x00-\x1f\x7f]+"), "printable text")
CREATE: Schema = {"start_point": POINT, "end_point": POINT}


@routes.post("/paths")
async def create(request: web.Request) -> web.Response:
    fields = validate(await read_json(request), CREATE)
    if fields["start_point"] == fields["end_point"]:
        raise unprocessable("end_point: must differ from start_point")
    path = await repo.insert(request.app[DB_POOL], caller(request), fields["start_point"],
                             fields["end_point"])
    return entity_response(path, status=201, location=f"/paths/{path['id']}")


@routes.get("/paths/search")
async def search(request: web.Request) -> web.Response:
    check_query(request, ("start", "limit", "offset"))
    start = query_str(request, "start", max_len=200)
    if not start:
        raise bad_request("give ?start=<prefix of the start point>")
    limit, offset = page(request)
    items, has_more = await repo.search(request.app[DB_POOL], start, limit, offset)
    return list_response(items, limit=limit, offset=offset, has_more=has_more)


@routes.get("/paths/" + ID_ROUTE)
async def get_path(request: web.Request) -> web.Response:
    check_query(request, ())
    found = await repo.get(request.app[DB_POOL], path_id(request))
    if found is None:
        raise not_found(f"path {path_id(request)} not found")
    return entity_response(found)
