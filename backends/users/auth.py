"""`POST /auth/token`: exchange a login and password (HTTP Basic or JSON) for a Bearer JWT."""
from __future__ import annotations

import base64

from aiohttp import web

from backends.common.db import DB_POOL
from backends.common.errors import ApiError, bad_request
from backends.common.validation import read_json, validate
from backends.users import repository as repo
from backends.users.passwords import verify_password_async
from backends.users.schemas import CREDENTIALS
from cachegate.tokens import TokenIssuer

ISSUER: web.AppKey[TokenIssuer] = web.AppKey("token_issuer", TokenIssuer)

routes = web.RouteTableDef()


@routes.post("/auth/token")
async def issue_token(request: web.Request) -> web.Response:
    login, password = await _credentials(request)
    found = await repo.credentials(request.app[DB_POOL], login)
    # An unknown login costs the same scrypt time as a wrong password: no user enumeration by timing.
    valid = await verify_password_async(password, found[1] if found else None)
    if found is None or not valid:
        raise _invalid("invalid login or password")
    token = request.app[ISSUER].issue(found[0], found[2])
    return web.json_response(token.as_json(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _credentials(request: web.Request) -> tuple[str, str]:
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        return _basic(authorization)
    if not request.body_exists:
        raise _invalid("send HTTP Basic credentials or a JSON body {login, password}")
    fields = validate(await read_json(request), CREDENTIALS)
    return fields["login"], fields["password"]


def _basic(authorization: str) -> tuple[str, str]:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise _invalid("expected Authorization: Basic credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and the bare ValueError of a non-ASCII str
        raise bad_request("malformed Basic credentials") from None
    login, sep, password = decoded.partition(":")
    if not sep or not login:
        raise bad_request("malformed Basic credentials: expected login:password")
    return login, password


def _invalid(message: str) -> ApiError:
    return ApiError(401, "invalid_credentials", message,
                    headers={"WWW-Authenticate": 'Basic realm="cachegate"'})
