"""Checks of the fuzz tests beyond schemathesis' own: the error shape, and the rules the document states
in words (which a JSON schema can not, so a schema-valid request may still be refused for them)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any


def error_shape(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx, documented or not, is JSON {"error": {"code", "message"}} and shows no traceback."""
    assert "Traceback" not in response.text, "a traceback in the body"
    if not 400 <= response.status_code < 500:
        return None
    ctype = response.headers.get("content-type", [""])[0]
    assert ctype.split(";")[0].strip() == "application/json", f"4xx with Content-Type {ctype!r}"
    body = json.loads(response.text)
    assert isinstance(body, dict) and set(body) == {"error"}, f"4xx body is not an error: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}, f"bad error object: {error!r}"
    assert isinstance(error["code"], str) and error["code"], f"bad error code: {error!r}"
    assert isinstance(error["message"], str) and error["message"], f"bad error message: {error!r}"
    return None


def _utc(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).upper()).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def breaks_a_prose_rule(case: Any, known_paths: set[int]) -> bool:
    """Valid by the schema, refused by a rule the document states in words (a JSON schema can not)."""
    label, body, query = case.operation.label, case.body, case.query or {}
    if label == "GET /users/search":
        return "first_name" not in query and "last_name" not in query
    if label == "POST /paths" and isinstance(body, dict):
        return body.get("start_point") == body.get("end_point")
    if label in ("POST /trips", "PUT /trips/{id}") and isinstance(body, dict):
        start, finish = _utc(body.get("starts_at")), _utc(body.get("finishes_at"))
        in_range = all(moment is not None and 1970 <= moment.year <= 9999 for moment in (start, finish))
        return body.get("path_id") not in known_paths or not in_range or not start < finish  # type: ignore
    return False
