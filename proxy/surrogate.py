"""Cache tags an upstream names in its answer (Cache-Tag, Surrogate-Key): read, bounded, never shown on.

`Cache-Tag: user-42, user-lists` (comma-separated, as Cloudflare reads it) or `Surrogate-Key: user-42
user-lists` (space-separated, as Fastly does); either header may use either separator. The entry the
answer fills is indexed under each tag, as under its rule's `tags`, so `cachegate admin purge --tag
user-42` drops it. The headers are taken off the answer before anyone sees it: the client, the stored
entry and the access log never carry them.
"""
from __future__ import annotations

import re
from typing import Mapping

TAG_HEADERS = ("Cache-Tag", "Surrogate-Key")
MAX_TAGS = 32  # per answer: each costs the fill a sorted set and a fence check in Redis
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_SEPARATORS = re.compile(r"[\s,]+")


def upstream_tags(headers: Mapping[str, str]) -> tuple[tuple[str, ...], int]:
    """(the tags named by the answer's headers, in order and without repeats; how many were dropped as
    invalid or past MAX_TAGS)."""
    found: dict[str, None] = {}
    dropped = 0
    for name in TAG_HEADERS:
        for value in headers.getall(name, ()) if hasattr(headers, "getall") else [headers.get(name, "")]:
            for tag in _SEPARATORS.split(value or ""):
                if not tag:
                    continue
                if _TAG.fullmatch(tag) is None or (len(found) >= MAX_TAGS and tag not in found):
                    dropped += 1
                else:
                    found[tag] = None
    return tuple(found), dropped
