"""The status page on the admin listener: behind the token (a login form and a cookie for browsers), the
figures of the metrics, refreshing itself; checked over HTTP and in a real headless Chromium."""
from __future__ import annotations

import io
import re

import aiohttp
import pytest

from proxy.admin import COOKIE_LIFETIME, STATUS
from tests.support.browser import headless_chromium

USER_ROW = 'GET /users/{id:int}'
GREEN = (31, 122, 77)  # the hit-ratio bar's colour (#1f7a4d)


async def traffic(world) -> tuple[int, str]:
    """On the user route: one miss, then three hits (75%), one answer refused (401)."""
    uid, auth = await world.user("stan")
    for _ in range(4):
        assert (await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})).status == 200
    assert (await world.proxy.get(f"/users/{uid}", headers={"Authorization": "Bearer no"})).status == 401
    return uid, auth


def base(world) -> str:
    return f"http://127.0.0.1:{world.config.proxy.admin_port}"


def row(html: str, route: str) -> dict[str, str]:
    found = re.search(r'<tr data-route="' + re.escape(route) + r'">(.*?)</tr>', html, re.S)
    assert found, route
    return dict(re.findall(r'<td class="n ([a-z-]+)">([^<]*)</td>', found.group(1)))


async def test_a_browser_logs_in_once_and_gets_a_cookie_that_opens_only_the_page(world):
    await traffic(world)
    token = world.config.proxy.admin_token()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(base(world) + STATUS, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/-/admin/status/login"
        async with browser.get(base(world) + "/-/admin/status/login") as resp:
            form = await resp.text()
            assert resp.status == 200 and "Set-Cookie" not in resp.headers
            assert 'type="password" name="token"' in form
        async with browser.post(base(world) + "/-/admin/status/login", data={"token": token + "x"},
                                allow_redirects=False) as resp:
            assert resp.status == 401 and "not the admin token" in await resp.text()
            assert "Set-Cookie" not in resp.headers
        async with browser.post(base(world) + "/-/admin/status/login", data={"token": token},
                                allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == STATUS
            cookie = resp.headers["Set-Cookie"]
        assert token not in cookie
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "samesite", "path", "max-age"} <= attributes
        assert "SameSite=Strict" in cookie and f"Path={STATUS}" in cookie
        assert f"Max-Age={COOKIE_LIFETIME}" in cookie
        async with browser.get(base(world) + STATUS) as resp:
            html = await resp.text()
            assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        assert '<meta http-equiv="refresh" content="5">' in html
        # Everything else still needs the Bearer header: a cookie can never change anything.
        for method, path in (("POST", "/-/admin/cache"), ("GET", "/-/admin/state"),
                             ("POST", "/-/admin/purge"), ("GET", "/-/admin/explain?target=/users/1")):
            async with browser.request(method, base(world) + path, json={"enabled": False}) as resp:
                assert resp.status == 401, path
        async with browser.post(base(world) + "/-/admin/status/logout", allow_redirects=False) as resp:
            assert resp.status == 303
        async with browser.get(base(world) + STATUS, allow_redirects=False) as resp:
            assert resp.status == 303  # logged out
    assert (await (await world.admin.get("/-/admin/state")).json())["cache_enabled"] is True


async def test_the_page_shows_the_figures_of_the_metrics(world):
    await traffic(world)
    resp = await world.admin.get(STATUS)  # the Bearer header opens it too (curl, scripts)
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    user = row(html, USER_ROW)
    assert (user["requests"], user["hit-ratio"], user["stale"], user["errors"]) == ("5", "60.0%", "0", "0")
    assert user["cache-latency"].endswith(" ms") and user["upstream-latency"].endswith(" ms")
    assert row(html, "GET /trips/{id:int}") == {"requests": "0", "hit-ratio": "-", "stale": "0",
                                                "errors": "0", "cache-latency": "-", "upstream-latency": "-"}
    assert 'style="width: 60.0%"' in html
    state = dict(re.findall(r"<dt>([^<]*)</dt><dd[^>]*>([^<]*)</dd>", html))
    assert state["cache"] == "on" and state["config generation"] == "1" and state["breaker"] == "closed"
    assert state["key epoch"] == "0" and state["ready"] == "yes" and state["redis"] == "ok"
    assert state["upstream:users"] == "ok" and re.fullmatch(r"\d+ \(\d+\.\d\d ms mean, 0 failed\)",
                                                             state["Redis calls"])
    users = re.search(r'<tr data-upstream="users">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r'class="n requests">\d+<', users) and 'class="n errors">0<' in users


async def test_route_names_are_escaped(make_world):
    world = await make_world({"routes": [
        {"methods": ["GET"], "path": "/x/<b>", "upstream": "users", "strategy": "passthrough"},
        {"methods": ["POST"], "path": "/users", "upstream": "users", "strategy": "passthrough",
         "auth": "none"},
        {"methods": ["POST"], "path": "/auth/token", "upstream": "users", "strategy": "passthrough",
         "auth": "none"}]})
    html = await (await world.admin.get(STATUS)).text()
    assert "/x/<b>" not in html and "/x/&lt;b&gt;" in html


@pytest.mark.slow
async def test_in_a_real_browser_the_page_renders_its_figures_and_refreshes_itself(world, tmp_path):
    uid, auth = await traffic(world)
    async with headless_chromium(tmp_path / "chromium") as browser:
        await browser.navigate(base(world) + STATUS)  # redirected to the form
        assert await browser.evaluate("location.pathname") == "/-/admin/status/login"
        seen = len(browser.events)
        token = world.config.proxy.admin_token()
        await browser.evaluate(f"document.querySelector('input[name=token]').value = {token!r};"
                               "document.querySelector('form.login').submit()")
        await browser.wait_for("Page.loadEventFired", seen)
        assert await browser.evaluate("location.pathname") == STATUS
        assert await browser.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
        cells = await browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('tr[data-route=\"GET /users/{id:int}\"] td.n')]"
            ".map(td => [td.className.split(' ')[1], td.textContent]))")
        assert (cells["requests"], cells["hit-ratio"]) == ("5", "60.0%")
        # The screenshot shows the figure: the bar fills 60% of its track, in its colour.
        box = await browser.evaluate(
            "(() => { const t = document.querySelector('tr[data-route=\"GET /users/{id:int}\"] .track')"
            ".getBoundingClientRect(); return [t.x, t.y, t.width, t.height, devicePixelRatio]; })()")
        png = await browser.screenshot()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        from matplotlib.image import imread
        pixels = (imread(io.BytesIO(png), format="png")[..., :3] * 255).round().astype(int)
        x, y, width, height, scale = box
        middle = pixels[int((y + height / 2) * scale), int(x * scale):int((x + width) * scale)]
        green = sum(1 for pixel in middle if all(abs(int(c) - g) <= 8 for c, g in zip(pixel, GREEN)))
        assert green / len(middle) == pytest.approx(0.60, abs=0.02)
        assert len({tuple(p) for p in pixels.reshape(-1, 3)[::97]}) > 5  # text, not a blank page
        # It reloads itself (the cookie goes with it), with the figures of now.
        await browser.evaluate("window.loadedBefore = true")
        assert (await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})).status == 200
        await browser.wait_for("Page.loadEventFired", len(browser.events), deadline=20)
        assert await browser.evaluate("window.loadedBefore === undefined && location.pathname") == STATUS
        cells = await browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('tr[data-route=\"GET /users/{id:int}\"] td.n')]"
            ".map(td => [td.className.split(' ')[1], td.textContent]))")
        assert (cells["requests"], cells["hit-ratio"]) == ("6", "66.7%")
