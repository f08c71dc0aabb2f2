"""The admin listener's status page, in the spirit of HAProxy's: one HTML page of this process's figures.

Rendered on the server from the same numbers /-/metrics exports, so it needs no script and no request of
its own: the page reloads itself every REFRESH seconds (a meta refresh, which sends the page's cookie).
"""
from __future__ import annotations

import time
from html import escape
from typing import Any

REFRESH = 5  # seconds between reloads of the page
BAD = frozenset({"no", "off", "open", "half-open", "unavailable", "unreachable"})  # shown in red
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; background: #fff; }
h1 { font-size: 20px; margin: 0 0 .6em; } h2 { font-size: 16px; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; } th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f1f1f1; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.track { display: inline-block; width: 200px; height: 12px; background: #e4e4e4; vertical-align: middle; }
.bar { display: block; height: 12px; background: #1f7a4d; }
.ok { color: #1f7a4d; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; margin: 0; }
dt { color: #555; } dd { margin: 0; font-weight: 600; }
form.login input { font: inherit; padding: 4px; width: 28em; } .error { color: #b3261e; }
"""


def status_page(figures: dict[str, Any], *, logout: str) -> str:
    """The page for `figures` (proxy/control.py: figures())."""
    checks = figures.get("checks") or {}
    state = [("process", f"pid {figures['pid']}"),
             ("cache", "on" if figures["cache_enabled"] else "off"),
             ("config generation", str(figures["generation"])),
             ("key epoch", str(figures.get("epoch", "-"))),
             ("breaker", figures["breaker"]),
             ("ready", "-" if figures.get("ready") is None else ("yes" if figures["ready"] else "no"))]
    redis = figures.get("redis_figures") or {}
    if redis:
        state.append(("Redis calls", f"{redis['calls']} ({_ms(redis['seconds'])} mean, "
                                     f"{redis['errors']} failed)"))
    state += [(name, result) for name, result in sorted(checks.items())]
    rows = "".join(_route_row(r) for r in figures.get("routes_figures", []))
    upstreams = "".join(
        f"<tr data-upstream=\"{escape(u['upstream'])}\"><td>{escape(u['upstream'])}</td>"
        f"<td class=\"n requests\">{u['requests']}</td><td class=\"n errors\">{u['errors']}</td>"
        f"<td class=\"n latency\">{_ms(u['seconds'])}</td></tr>"
        for u in figures.get("upstreams_figures", []))
    workers = figures.get("workers")
    note = ("" if not workers else
            f"<p>This master relays to {len(workers)} workers (pids {', '.join(map(str, workers))}); each "
            "counts its own requests on its /-/metrics.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH}">
<title>cachegate status</title><style>{CSS}</style></head>
<body>
<h1>cachegate status</h1>
<dl id="state">{''.join(f'<dt>{escape(k)}</dt><dd class="{_tone(v)}">{escape(v)}</dd>' for k, v in state)}
</dl>
{note}
<h2>Routes</h2>
<table id="routes"><tr><th>route</th><th>requests</th><th>hit ratio</th><th></th><th>stale served</th>
<th>errors (5xx)</th><th>latency from cache</th><th>latency upstream</th></tr>{rows}</table>
<h2>Upstreams</h2>
<table id="upstreams"><tr><th>upstream</th><th>requests</th><th>errors</th><th>mean latency</th></tr>
{upstreams}</table>
<p>Figures of this process since it started, as of {time.strftime('%H:%M:%S')}; this page reloads every
{REFRESH} s. <form method="post" action="{logout}" style="display:inline"><button>Log out</button></form></p>
</body></html>
"""


def _route_row(r: dict[str, Any]) -> str:
    ratio = r["hit_ratio"]
    shown = "-" if ratio is None else f"{ratio * 100:.1f}%"
    width = 0.0 if ratio is None else ratio * 100
    return (f"<tr data-route=\"{escape(r['route'])}\"><td>{escape(r['route'])}</td>"
            f"<td class=\"n requests\">{r['requests']}</td><td class=\"n hit-ratio\">{shown}</td>"
            f"<td><span class=\"track\"><span class=\"bar\" style=\"width: {width:.1f}%\"></span></span></td>"
            f"<td class=\"n stale\">{r['stale']}</td><td class=\"n errors\">{r['errors']}</td>"
            f"<td class=\"n cache-latency\">{_ms(r['cache_seconds'])}</td>"
            f"<td class=\"n upstream-latency\">{_ms(r['upstream_seconds'])}</td></tr>")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def _tone(value: str) -> str:
    if value in ("ok", "yes", "on", "closed"):
        return "ok"
    if value in BAD or value.startswith("status"):
        return "bad"
    return ""


def login_page(action: str, error: str | None = None) -> str:
    """The form a browser sends the admin token with, once; the answer sets the page's cookie."""
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cachegate status: log in</title><style>{CSS}</style></head>
<body><h1>cachegate status</h1>{problem}
<form class="login" method="post" action="{action}">
<p><label>Admin token (proxy.admin.token_file)<br>
<input type="password" name="token" autocomplete="current-password" autofocus required></label></p>
<p><button type="submit">Show the status</button></p></form>
</body></html>
"""
