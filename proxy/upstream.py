"""The one seam to the backends: a keep-alive aiohttp session, time-outs, and foreign errors mapped here."""
from __future__ import annotations

import asyncio
import json
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy.errors import AuthError, UpstreamError, UpstreamTimeout
from proxy.metrics import Metrics

if TYPE_CHECKING:
    from strategies.base import Request

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded. Content-Length is recomputed by
# whoever writes the next message.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "content-length"})
# Requests: the session sets Host; backends answer identity (we cache one representation, uncompressed).
REQUEST_DROP = HOP_BY_HOP | {"host", "accept-encoding"}
# Responses arrive decompressed (auto_decompress), so their encoding no longer applies.
RESPONSE_DROP = HOP_BY_HOP | {"content-encoding"}


def strip_hop_by_hop(headers: Mapping[str, str], drop: frozenset[str] = RESPONSE_DROP) -> CIMultiDict[str]:
    named = {h.strip().lower() for h in headers.get("Connection", "").split(",") if h.strip()}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lower = name.lower()
        if lower not in drop and lower not in named:
            out.add(name, value)
    return out


# Seconds the upstream exchange of this request took, for its access log line. A mutable holder, not the
# value: the fetch of a miss runs in a task of its own, which sees the holder through its copied context.
# A request that waited for another request's fetch (coalesced) never went upstream and keeps None.
upstream_time: ContextVar[list[float | None]] = ContextVar("upstream_time")


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Upstream:
    """Sends a strategy's Request to a named upstream; 502 when it cannot be reached, 504 when it is too slow."""

    def __init__(self, session: aiohttp.ClientSession, bases: Mapping[str, str], metrics: Metrics, *,
                 max_body: int) -> None:
        self._session = session
        self._bases = dict(bases)
        self._metrics = metrics
        self._max_body = max_body

    def with_bases(self, bases: Mapping[str, str]) -> Upstream:
        """A reload may move an upstream; the session and its pooled connections are kept."""
        return Upstream(self._session, bases, self._metrics, max_body=self._max_body)

    async def send(self, upstream: str, request: Request) -> UpstreamResponse:
        target = request.path + "?" + request.query_string if request.query_string else request.path
        # encoded=True: the target is already canonical (proxy/canonical.py); yarl must not re-encode it.
        url = URL(self._bases[upstream] + target, encoded=True)
        started = time.perf_counter()
        status = "error"
        try:
            async with self._session.request(request.method, url, headers=request.headers,
                                             data=request.body or None, allow_redirects=False) as resp:
                body = await resp.content.read(self._max_body + 1)
                if len(body) > self._max_body:
                    raise UpstreamError(f"upstream {upstream} answered with a body over {self._max_body} bytes")
                status = str(resp.status)
                return UpstreamResponse(resp.status, CIMultiDictProxy(strip_hop_by_hop(resp.headers)), body)
        except asyncio.TimeoutError:
            status = "timeout"
            raise UpstreamTimeout(f"upstream {upstream} did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream {upstream} is unreachable ({type(exc).__name__})") from None
        finally:
            elapsed = time.perf_counter() - started
            holder = upstream_time.get(None)
            if holder is not None:
                holder[0] = elapsed
            self._metrics.upstream_latency.labels(upstream).observe(elapsed)
            self._metrics.upstream_requests.labels(upstream, status).inc()

    async def exchange_basic(self, upstream: str, path: str, credentials: str) -> str:
        """Basic credentials -> a token from the users service. The credentials are never logged or kept."""
        try:
            async with self._session.post(self._bases[upstream] + path,
                                          headers={"Authorization": f"Basic {credentials}"}) as resp:
                payload = await resp.read()
                status = resp.status
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"upstream {upstream} did not answer the token exchange in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream {upstream} is unreachable ({type(exc).__name__})") from None
        if status in (400, 401, 403):
            raise AuthError("invalid credentials", headers={"WWW-Authenticate": 'Basic realm="cachegate"'})
        if status != 200:
            raise UpstreamError(f"token exchange at {upstream} failed with status {status}")
        try:
            token = json.loads(payload)["access_token"]
        except (ValueError, KeyError, TypeError):
            raise UpstreamError(f"token exchange at {upstream} gave no access_token") from None
        if not isinstance(token, str):
            raise UpstreamError(f"token exchange at {upstream} gave no access_token")
        return token


def make_session(*, connect_timeout: float, total_timeout: float, limit: int = 512) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
    # No cookie jar: a shared gateway must never carry one client's cookies to another.
    return aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(),
                                 auto_decompress=True, skip_auto_headers=("User-Agent",))
