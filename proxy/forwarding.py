"""The headers a request carries upstream, built only if it goes upstream (a cache hit never needs them)."""
from __future__ import annotations

from typing import Iterator, Mapping, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.upstream import HOP_BY_HOP, VIA, strip_hop_by_hop

# The session sets Host; backends answer identity (we cache one representation, uncompressed).
REQUEST_DROP = HOP_BY_HOP | {"host", "accept-encoding"}
# Names whose outgoing value differs from what the client sent.
_REWRITTEN = REQUEST_DROP | {"authorization", "x-forwarded-for", "x-forwarded-proto", "x-request-id", "via"}


class Client(Protocol):
    """The parts of aiohttp's request the outgoing headers need."""
    @property
    def remote(self) -> str | None: ...
    @property
    def scheme(self) -> str: ...
    @property
    def version(self) -> tuple[int, int]: ...


class OutgoingHeaders(Mapping[str, str]):
    """Reads of an untouched header go straight to the client's headers; anything else builds the outgoing
    set once: hop-by-hop headers stripped, the verified Authorization, X-Forwarded-For/-Proto,
    X-Request-Id, and the gateway added to Via."""

    __slots__ = ("_raw", "_authorization", "_client", "_request_id", "_built")

    def __init__(self, raw: CIMultiDictProxy[str], *, authorization: str | None, client: Client,
                 request_id: str) -> None:
        self._raw = raw
        self._authorization = authorization
        self._client = client  # peer address and scheme are looked up only when the headers are built
        self._request_id = request_id
        self._built: CIMultiDict[str] | None = None

    def get(self, name: str, default=None):
        if name.lower() in _REWRITTEN or "Connection" in self._raw:
            return self.build().get(name, default)
        return self._raw.get(name, default)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.build())

    def __len__(self) -> int:
        return len(self.build())

    def items(self):
        return self.build().items()

    def build(self) -> CIMultiDict[str]:
        if self._built is None:
            headers = strip_hop_by_hop(self._raw, REQUEST_DROP)
            headers.popall("Authorization", None)
            if self._authorization is not None:
                headers["Authorization"] = self._authorization
            peer = self._client.remote or ""
            previous = self._raw.get("X-Forwarded-For")
            headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
            headers["X-Forwarded-Proto"] = self._client.scheme
            headers["X-Request-Id"] = self._request_id
            major, minor = self._client.version
            headers.add("Via", f"{major}.{minor} {VIA}")  # after any Via the client's request carried
            self._built = headers
        return self._built
