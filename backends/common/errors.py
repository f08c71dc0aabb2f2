"""JSON errors for the services: one exception type and one middleware that renders every error.

Whatever goes wrong in a handler (an ApiError, aiohttp's own 404/405/413, a database outage or an
unexpected bug) leaves the service as `{"error": {"code": ..., "message": ...}}`, never a traceback.
"""
from __future__ import annotations

import logging

import pymysql
from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger("backends.errors")

# aiohttp raises these on its own (router, body size); map them to stable snake_case codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


class ApiError(Exception):
    """An error meant for the client: an HTTP status, a snake_case code and a safe message."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def unauthorized(message: str, code: str = "unauthorized") -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": 'Bearer realm="cachegate"'})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def precondition_failed(message: str) -> ApiError:
    return ApiError(412, "precondition_failed", message)


def unprocessable(message: str) -> ApiError:
    return ApiError(422, "validation_error", message)


def database_unavailable(message: str = "the database is unavailable, retry later") -> ApiError:
    return ApiError(503, "database_unavailable", message, headers={"Retry-After": "1"})


def write_outcome_unknown() -> ApiError:
    """The connection broke after COMMIT was sent: the write may or may not have happened."""
    return ApiError(503, "write_outcome_unknown",
                    "the database connection broke while the write was committing, so it may or may not have "
                    "been applied; read the resource before writing again, or retry with If-Match",
                    headers={"Retry-After": "1"})


def write_conflict(attempts: int) -> ApiError:
    return ApiError(409, "write_conflict",
                    f"the write lost to concurrent writes of the same rows {attempts} times; retry")


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        code = _HTTP_CODES.get(exc.status, "error")
        return error_response(exc.status, code, exc.reason, headers)
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError, ConnectionError, TimeoutError) as exc:
        # The database is down or the connection broke mid-query: the client may retry later.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        unavailable = database_unavailable()
        return error_response(unavailable.status, unavailable.code, unavailable.message, unavailable.headers)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")
