"""Helpers of the service tests (kept out of conftest so test modules can import them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PASSWORD = "correct horse battery"

@dataclass(frozen=True)
class Account:
    """A registered user and a valid token for it."""

    user: dict[str, Any]
    token: str

    @property
    def id(self) -> int:
        return self.user["id"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


PRIVATE_FIELDS = ("login", "email")  # shown only to the user itself


def public_view(user: dict[str, Any]) -> dict[str, Any]:
    """What anyone else sees of a user (registration and /users/me answer with the private view)."""
    return {k: v for k, v in user.items() if k not in PRIVATE_FIELDS}


def profile(login: str, **overrides: Any) -> dict[str, Any]:
    body = {"login": login, "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace",
            "email": f"{login}@example.com", "title": "Countess"}
    body.update(overrides)
    return body


async def error_of(resp: Any, status: int) -> str:
    """Assert an error answer's status and JSON shape; return its code."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["code"]
