"""The one seam to the backends: request and response types, a keep-alive session, foreign errors mapped."""
from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.metrics import Metrics
from proxy.surrogate import TAG_HEADERS, upstream_tags

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded. Content-Length is recomputed by
# whoever writes the next message.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "content-length"})
# Responses arrive decompressed (auto_decompress), so their encoding no longer applies. The cache tags an
# upstream names are the gateway's alone (proxy/surrogate.py).
RESPONSE_DROP = HOP_BY_HOP | {"content-encoding"} | {name.lower() for name in TAG_HEADERS}
# RFC 9110 7.6.3: a proxy adds itself to Via on every message it forwards (pseudonym: no host name).
VIA = "cachegate"


@dataclass(frozen=True, slots=True)
class Request:
    """What goes upstream; no aiohttp types, so strategies can be tested without an app."""
    method: str
    path: str                   # canonical (proxy/canonical.py), encoded exactly as it goes upstream
    query_string: str           # canonical too: the very string the key was rendered from
    headers: Mapping[str, str]  # case-insensitive (a multidict)
    body: bytes


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: CIMultiDictProxy[str]  # hop-by-hop headers stripped; shared by whoever waited on this fetch
    body: bytes
    elapsed: float                  # seconds the exchange took, for the access log
    tags: tuple[str, ...] = ()      # the cache tags its Cache-Tag / Surrogate-Key headers named


def strip_hop_by_hop(headers: Mapping[str, str], drop: frozenset[str] = RESPONSE_DROP) -> CIMultiDict[str]:
    named = {h.strip().lower() for h in headers.get("Connection", "").split(",") if h.strip()}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lower = name.lower()
        if lower not in drop and lower not in named:
            out.add(name, value)
    return out


@contextmanager
def mapped_errors(name: str) -> Iterator[None]:
    """aiohttp's errors as ours: 504 when the backend was too slow, 502 when it could not be reached."""
    try:
        yield
    except asyncio.TimeoutError as exc:
        raise UpstreamTimeout(f"upstream {name} did not answer in time") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"upstream {name} is unreachable ({type(exc).__name__})") from exc


class Upstream:
    """Sends a Request to a named upstream (`upstreams:` of config.yaml) with this generation's time-outs."""

    def __init__(self, session: aiohttp.ClientSession, bases: Mapping[str, str], metrics: Metrics, *,
                 max_body: int, connect_timeout: float, timeout: float) -> None:
        self._session = session
        self._bases = dict(bases)
        self._metrics = metrics
        self._max_body = max_body
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        return self._timeout

    def names(self) -> list[str]:
        return list(self._bases)

    async def send(self, name: str, request: Request) -> UpstreamResponse:
        target = request.path + "?" + request.query_string if request.query_string else request.path
        # encoded=True: the target is already canonical (proxy/canonical.py); yarl must not re-encode it.
        url = URL(self._bases[name] + target, encoded=True)
        started = time.perf_counter()
        status = "error"
        try:
            with mapped_errors(name):
                async with self._session.request(request.method, url, headers=request.headers,
                                                 data=request.body or None, allow_redirects=False,
                                                 timeout=self._timeout) as resp:
                    body = await resp.content.read(self._max_body + 1)
                    if len(body) > self._max_body:
                        raise UpstreamError(f"upstream {name} answered with a body over "
                                            f"{self._max_body} bytes")
                    status = str(resp.status)
                    kept = strip_hop_by_hop(resp.headers)
                    kept.add("Via", f"{resp.version.major}.{resp.version.minor} {VIA}")
                    tags: tuple[str, ...] = ()
                    if "Cache-Tag" in resp.headers or "Surrogate-Key" in resp.headers:
                        tags, dropped = upstream_tags(resp.headers)
                        if dropped:
                            self._metrics.upstream_tags_dropped.inc(dropped)
                    return UpstreamResponse(resp.status, CIMultiDictProxy(kept), body,
                                            time.perf_counter() - started, tags)
        except UpstreamTimeout:
            status = "timeout"
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.upstream_latency.labels(name).observe(elapsed)
            self._metrics.upstream_requests.labels(name, status).inc()


    async def health(self, name: str, *, timeout: float) -> str:
        """"ok" when the upstream's /-/health answers below 500, else why not; a probe, not counted as a
        request of the API."""
        try:
            async with self._session.get(self._bases[name] + "/-/health",
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                return "ok" if resp.status < 500 else f"status {resp.status}"
        except (aiohttp.ClientError, TimeoutError):
            return "unreachable"


def make_session(*, per_upstream: int = 64) -> aiohttp.ClientSession:
    """The process's one session; each generation's Upstream passes its own time-outs per request.

    At most `per_upstream` connections (so requests at once) go to one upstream (host and port); the
    requests beyond wait in the connector's queue, first come first served, within their upstream_timeout.
    A cold burst then queues here instead of opening hundreds of connections at once, which the service's
    accept queue (LISTEN_BACKLOG, at least workers x per_upstream) would have to hold.
    """
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=per_upstream, keepalive_timeout=30,
                                     ttl_dns_cache=300)
    # No cookie jar: a shared gateway must never carry one client's cookies to another.
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                 auto_decompress=True, skip_auto_headers=("User-Agent",))
