"""Users: register, read (by id, by login, the caller), search by name masks, update and delete oneself.

Everyone gets a user's public profile (repository.public); only the user itself gets its private view
(repository.private: plus login and email), from `GET /users/me` and from its own writes. Deleting oneself
or changing one's password voids one's older tokens, and the answer says so to the gateway.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from backends.common.app import TOKEN_VERSIONS, caller
from backends.common.db import DB_POOL
from backends.common.entities import deleted_response, entity_response, if_match, list_response
from backends.common.errors import bad_request, forbidden, not_found
from backends.common.validation import ID_ROUTE, check_query, page, path_id, query_str, read_json, validate
from backends.users import repository as repo
from backends.users.passwords import hash_password_async
from backends.users.schemas import LOGIN, REGISTER, UPDATE
from cachegate.tokens import REVOCATION_HEADER, revocation_header

routes = web.RouteTableDef()
USER_ID = "/users/" + ID_ROUTE


@routes.post("/users")
async def register(request: web.Request) -> web.Response:
    fields = validate(await read_json(request), REGISTER)
    password_hash = await hash_password_async(fields["password"])
    user = repo.private(await repo.insert(request.app[DB_POOL], fields, password_hash))
    return entity_response(user, status=201, location=f"/users/{user['id']}", tag=user_tag(user["id"]))


@routes.get("/users/me")
async def me(request: web.Request) -> web.Response:
    check_query(request, ())
    user_id = caller(request)
    row = await repo.get(request.app[DB_POOL], user_id)
    if row is None:
        raise not_found(f"user {user_id} not found")
    return entity_response(repo.private(row), tag=user_tag(user_id))


@routes.get("/users/search")
async def search(request: web.Request) -> web.Response:
    check_query(request, ("first_name", "last_name", "limit", "offset"))
    first_name = query_str(request, "first_name", max_len=100)
    last_name = query_str(request, "last_name", max_len=100)
    if not first_name and not last_name:
        raise bad_request("give first_name, last_name or both (name prefixes)")
    limit, offset = page(request)
    rows, has_more = await repo.search(request.app[DB_POOL], first_name, last_name, limit, offset)
    return list_response([repo.public(row) for row in rows], limit=limit, offset=offset, has_more=has_more)


@routes.get("/users")
async def by_login(request: web.Request) -> web.Response:
    check_query(request, ("login",))
    login = request.query.get("login")
    if not login:
        raise bad_request("give ?login=<login>")
    # A login that could never have been registered can not match: no need to ask the database.
    fits = len(login) <= LOGIN.max_len and LOGIN.pattern is not None and LOGIN.pattern.fullmatch(login)
    row = await repo.get_by_login(request.app[DB_POOL], login) if fits else None
    return list_response([repo.public(row)] if row else [], limit=1, offset=0, has_more=False)


@routes.get(USER_ID)
async def get_user(request: web.Request) -> web.Response:
    """The public profile, to every caller alike (the user itself included): one entry at the proxy."""
    check_query(request, ())
    user_id = path_id(request)
    row = await repo.get(request.app[DB_POOL], user_id)
    if row is None:
        raise not_found(f"user {user_id} not found")
    return entity_response(repo.public(row), tag=user_tag(user_id))


@routes.put(USER_ID)
async def replace(request: web.Request) -> web.Response:
    user_id = _own_id(request)
    fields = validate(await read_json(request), UPDATE, optional=("password",))
    return await _update(request, user_id, fields)


@routes.patch(USER_ID)
async def patch(request: web.Request) -> web.Response:
    user_id = _own_id(request)
    fields = validate(await read_json(request), UPDATE, partial=True)
    return await _update(request, user_id, fields)


@routes.delete(USER_ID)
async def delete(request: web.Request) -> web.Response:
    user_id = _own_id(request)
    version, token_version = await repo.delete(request.app[DB_POOL], user_id, if_match(request))
    return _revoking(request, deleted_response(user_id, version), user_id, token_version + 1)


def user_tag(user_id: int) -> str:
    """The cache tag of every view of one user: `cachegate admin purge --tag user-42` drops them all."""
    return f"user-{user_id}"


def _own_id(request: web.Request) -> int:
    user_id = path_id(request)
    if user_id != caller(request):
        raise forbidden("a user may change only itself")
    return user_id


async def _update(request: web.Request, user_id: int, fields: dict[str, Any]) -> web.Response:
    columns = {name: value for name, value in fields.items() if name != "password"}
    if "password" in fields:
        # Hashed before a connection is taken: the pool is never held across the ~70 ms of scrypt.
        columns["password_hash"] = await hash_password_async(fields["password"])
    row = await repo.update(request.app[DB_POOL], user_id, columns, if_match(request))
    response = entity_response(repo.private(row), tag=user_tag(user_id))
    if "password" in fields:
        return _revoking(request, response, user_id, int(row["token_version"]))
    return response


def _revoking(request: web.Request, response: web.Response, user_id: int, below: int) -> web.Response:
    """The user's tokens older than `below` are void: at once in this process, and the gateway is told."""
    request.app[TOKEN_VERSIONS].forget(user_id)
    response.headers[REVOCATION_HEADER] = revocation_header(user_id, below)
    return response
