"""What goes upstream: no hop-by-hop headers, the verified token, X-Forwarded-*, X-Request-Id, Via."""
from __future__ import annotations

from types import SimpleNamespace

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.forwarding import OutgoingHeaders


def outgoing(raw: dict | list, authorization: str | None = "Bearer verified") -> OutgoingHeaders:
    items = raw.items() if isinstance(raw, dict) else raw
    client = SimpleNamespace(remote="10.0.0.9", scheme="http", version=(1, 1))
    return OutgoingHeaders(CIMultiDictProxy(CIMultiDict(items)), authorization=authorization, client=client,
                           request_id="rid-1")


def test_hop_by_hop_and_connection_named_headers_are_dropped():
    headers = outgoing({"Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1", "Keep-Alive": "5",
                        "Transfer-Encoding": "chunked", "Host": "client", "Accept-Encoding": "gzip",
                        "Accept": "application/json"})
    built = dict(headers.items())
    for gone in ("Connection", "X-Secret-Hop", "Keep-Alive", "Transfer-Encoding", "Host", "Accept-Encoding"):
        assert gone not in built
    assert headers.get("X-Secret-Hop") is None
    assert built["Accept"] == "application/json"


def test_authorization_is_the_verified_one_and_forwarded_headers_are_added():
    headers = outgoing({"Authorization": "Basic dXNlcjpwdw==", "X-Forwarded-For": "192.0.2.1"})
    assert headers["Authorization"] == "Bearer verified"
    assert headers["X-Forwarded-For"] == "192.0.2.1, 10.0.0.9"
    assert headers["X-Forwarded-Proto"] == "http" and headers["X-Request-Id"] == "rid-1"
    assert "Authorization" not in dict(outgoing({"Authorization": "x"}, authorization=None).items())


def test_untouched_headers_are_read_without_building():
    headers = outgoing({"If-None-Match": '"3"'})
    assert headers.get("If-None-Match") == '"3"'
    assert headers._built is None  # a cache hit never pays for the outgoing set
    assert len(headers) == 6 and headers._built is not None  # with Via


def test_the_gateway_adds_itself_to_via_after_what_the_client_sent():
    """RFC 9110 7.6.3: a proxy appends its own entry to the Via of every message it forwards."""
    headers = outgoing({"Via": "1.0 edge-proxy"})
    assert headers.build().getall("Via") == ["1.0 edge-proxy", "1.1 cachegate"]
    assert outgoing({}).build().getall("Via") == ["1.1 cachegate"]
