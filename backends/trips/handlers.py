"""Trips: create, read, replace (owner only, If-Match), list by owner, join and list members."""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from backends.common.app import caller
from backends.common.db import DB_POOL
from backends.common.entities import entity_response, if_match, list_response
from backends.common.errors import bad_request, not_found, unprocessable
from backends.common.validation import (ID_ROUTE, DateTime, Int, Schema, Str, check_query, page, path_id,
                                        query_int, read_json, validate)
from backends.trips import repository as repo

routes = web.RouteTableDef()
TRIP_ID = "/trips/" + ID_ROUTE

TRIP: Schema = {
    "path_id": Int(),
    "name": Str(1, 200, re.compile(r"[^\x00-\x1f\x7f]+"), "printable text"),
    "starts_at": DateTime(),
    "finishes_at": DateTime(),
}


@routes.post("/trips")
async def create(request: web.Request) -> web.Response:
    fields = _trip_fields(await read_json(request))
    trip = await repo.insert(request.app[DB_POOL], caller(request), fields)
    return entity_response(trip, status=201, location=f"/trips/{trip['id']}")


@routes.get("/trips")
async def by_owner(request: web.Request) -> web.Response:
    check_query(request, ("owner", "limit", "offset"))
    owner = query_int(request, "owner", default=0, minimum=1)
    if owner == 0:
        raise bad_request("give ?owner=<user id>")
    limit, offset = page(request)
    items, has_more = await repo.by_owner(request.app[DB_POOL], owner, limit, offset)
    return list_response(items, limit=limit, offset=offset, has_more=has_more)


@routes.get(TRIP_ID)
async def get_trip(request: web.Request) -> web.Response:
    check_query(request, ())
    trip = await repo.get(request.app[DB_POOL], path_id(request))
    if trip is None:
        raise not_found(f"trip {path_id(request)} not found")
    return entity_response(trip)


@routes.put(TRIP_ID)
async def replace(request: web.Request) -> web.Response:
    fields = _trip_fields(await read_json(request))
    trip = await repo.update(request.app[DB_POOL], path_id(request), caller(request), fields,
                             if_match(request))
    return entity_response(trip)


@routes.post(TRIP_ID + "/members")
async def join(request: web.Request) -> web.Response:
    trip_id = path_id(request)
    trip = await repo.join(request.app[DB_POOL], trip_id, caller(request))
    return entity_response(trip, status=201, location=f"/trips/{trip_id}/members")


@routes.get(TRIP_ID + "/members")
async def members(request: web.Request) -> web.Response:
    check_query(request, ())
    trip_id = path_id(request)
    found = await repo.members(request.app[DB_POOL], trip_id)
    if found is None:
        raise not_found(f"trip {trip_id} not found")
    version, items = found
    # The trip's version changes with every join, so it is a true validator of this list too.
    return entity_response({"trip_id": trip_id, "version": version, "items": items})


def _trip_fields(body: Any) -> dict[str, Any]:
    fields = validate(body, TRIP)
    if fields["starts_at"] >= fields["finishes_at"]:
        raise unprocessable("finishes_at: must be later than starts_at")
    return fields
