"""The status page's cookie: a keyed hash of its expiry; void when forged, expired or of another token."""
from __future__ import annotations

from proxy.admin import COOKIE_LIFETIME, StatusCookies

TOKEN = "an-admin-token-long-enough"


def test_a_cookie_is_valid_until_it_expires_and_holds_no_token():
    cookies = StatusCookies(TOKEN)
    issued = cookies.issue(now=1000.0)
    assert TOKEN not in issued and issued.startswith(f"{1000 + COOKIE_LIFETIME}.")
    assert cookies.valid(issued, now=1000.0 + COOKIE_LIFETIME - 1)
    assert not cookies.valid(issued, now=1000.0 + COOKIE_LIFETIME)


def test_forged_and_foreign_cookies_are_refused():
    cookies = StatusCookies(TOKEN)
    expiry, _, signature = cookies.issue(now=1000.0).partition(".")
    later = str(int(expiry) + 3600)
    for forged in (None, "", "x", f"{later}.{signature}", f"{expiry}.{signature[:-1]}0", f"{expiry}.",
                   StatusCookies(TOKEN + "x").issue(now=1000.0), f"-1.{signature}"):
        assert not cookies.valid(forged, now=1000.0), forged
