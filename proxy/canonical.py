"""One canonical form of a request target: the path the router matches, the path sent upstream, the query.

The router, the cache key and the upstream request must name the same resource, so every target is
reduced to one spelling here, before any of them sees it, or refused with a 400:

- path: escapes of unreserved characters are decoded, every other escape is upper-cased; refused are an
  encoded slash (%2F), a backslash (literal or %5C), dot segments (. and .., also as %2E), empty segments
  (//; a trailing slash is kept, it names another resource), control and other unprintable characters,
  malformed escapes, escapes that are not UTF-8, a fragment (#), and a target that is not a path;
- query: pairs split on & only, + is a space, escapes decoded to bytes and written again with one encoder
  (unreserved characters as is, everything else %XX upper-case, so ; or an encoded & stay data), a name
  without = gets one, empty pairs dropped, pairs sorted by name with the values of a repeated name kept in
  their order (a service may read the first one); refused are malformed escapes, unprintable characters
  and a fragment. Bytes that are not UTF-8 are kept as they are: two spellings that differ only there get
  two keys, never one key for two answers.
"""
from __future__ import annotations

import re
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes

from proxy.errors import BadPath, BadQuery

# The path is sent with pchar's sub-delims, ":" and "@" as themselves (RFC 3986 3.3): the encoder is a
# function of the decoded path, so one decoded path has exactly one spelling upstream.
PATH_SAFE = "!$&'()*+,;=:@"
# The common case, where the decoded path, the path sent and the target are one string.
_plain_path = re.compile(r"(?:/[A-Za-z0-9_~-]+)+").fullmatch
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def canonical_target(target: str) -> tuple[str, str, str]:
    """A raw request target -> (decoded path for the router, the same path encoded for upstream, query).

    Raises BadPath or BadQuery (400). The common target (/users/123) costs one `in` and one match."""
    if "?" in target:
        path, _, query = target.partition("?")
        query = canonical_query(query) if query else ""
    else:
        path, query = target, ""
    if _plain_path(path) is not None:
        return path, path, query
    decoded, encoded = canonical_path(path)
    return decoded, encoded, query


def canonical_path(raw: str) -> tuple[str, str]:
    """A raw path (no query) -> (decoded path, canonical encoding of it). Raises BadPath."""
    if not raw.startswith("/"):
        absolute = _ABSOLUTE_FORM.match(raw)
        if absolute is None:
            raise BadPath("expected a request target that starts with /")
        raw = raw[absolute.end():] or "/"
    if "#" in raw:
        raise BadPath("a request target carries no fragment (#)")
    if "\\" in raw:
        raise BadPath("the path may not contain a backslash")
    if not (raw.isascii() and raw.isprintable()):
        raise BadPath("the path may only contain printable ASCII characters; escape the others")
    if _BAD_ESCAPE.search(raw):
        raise BadPath("the path has a % that does not start a two-digit hex escape")
    segments = raw[1:].split("/")
    last = len(segments) - 1
    decoded: list[str] = []
    for i, segment in enumerate(segments):
        text = _decode_segment(segment) if "%" in segment else segment
        if text in (".", ".."):
            raise BadPath("the path may not contain . or .. segments")
        if not text and i != last:
            raise BadPath("the path may not contain an empty segment (//)")
        decoded.append(text)
    return "/" + "/".join(decoded), "/" + "/".join(quote(s, safe=PATH_SAFE) for s in decoded)


def _decode_segment(segment: str) -> str:
    try:
        text = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("the path has escapes that are not UTF-8") from None
    if "/" in text:
        raise BadPath("the path may not contain an encoded slash (%2F)")
    if "\\" in text:
        raise BadPath("the path may not contain an encoded backslash (%5C)")
    if not text.isprintable():
        raise BadPath("the path may not contain control or other unprintable characters")
    return text


def canonical_query(raw: str) -> str:
    """A raw query string (after ?) -> its canonical form, the one keys render from. Raises BadQuery."""
    if "#" in raw:
        raise BadQuery("a request target carries no fragment (#)")
    if not (raw.isascii() and raw.isprintable()):
        raise BadQuery("the query may only contain printable ASCII characters; escape the others")
    if "%" in raw and _BAD_ESCAPE.search(raw):
        raise BadQuery("the query has a % that does not start a two-digit hex escape")
    pairs = []
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_requote(name), _requote(value)))
    pairs.sort(key=_name)  # stable: a repeated name keeps the order of its values
    return "&".join(f"{name}={value}" for name, value in pairs)


def _name(pair: tuple[str, str]) -> str:
    return pair[0]


def _requote(component: str) -> str:
    if "%" not in component and "+" not in component:
        return quote(component, safe="")
    return quote_from_bytes(unquote_to_bytes(component.replace("+", " ")), safe="")

