"""The admin listener's client: one call carrying the admin token; every failure an AdminError saying why."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from cachegate.config import Config
from stack.net import loopback
from stack.process import StackError


class AdminError(StackError):
    """The admin call did not succeed: no listener, the token refused, or the call itself refused."""


def admin_url(config: Config) -> str:
    return f"http://{loopback(config.proxy.admin_host)}:{config.proxy.admin_port}"


def admin_call(config: Config, method: str, path: str, body: dict[str, Any] | None = None, *,
               timeout: float = 10.0) -> dict[str, Any]:
    """`method path` on the admin listener with the configured token; its JSON answer."""
    token = config.proxy.admin_token()  # ConfigError when there is none: the caller reports it as such
    url = admin_url(config) + path
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", **({"Content-Type": "application/json"} if data else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        message = _message(exc.read())
        if exc.code == 401:
            raise AdminError(f"admin: {admin_url(config)} refused the token ({message}); is this the "
                             "config the proxy was started with?") from None
        raise AdminError(f"admin: {method} {path}: {exc.code} {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminError(f"admin: no admin listener at {admin_url(config)} ({reason}); is the proxy running? "
                         "(`cachegate status`)") from None
    except ValueError:
        raise AdminError(f"admin: {method} {path}: the answer is not JSON") from None


def _message(body: bytes) -> str:
    """The message of a JSON error body, or the start of whatever came instead."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace") or "no body"
