"""One JSON call over HTTP for the runner's side steps (tokens); wrk does the measured traffic."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class CallError(Exception):
    """The call failed: no answer, a non-2xx status, or a body that is not JSON."""


def call_json(method: str, url: str, *, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None, timeout: float = 30) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise CallError(f"{method} {url}: {exc.code} {exc.read()[:200]!r}") from None
    except (OSError, ValueError) as exc:
        raise CallError(f"{method} {url}: {exc}") from None
