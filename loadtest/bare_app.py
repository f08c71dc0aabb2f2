"""A bare aiohttp handler: GET /users/{id} answers a fixed user-sized JSON body. The reference ceiling."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal

import uvloop
from aiohttp import web

# About the size and shape of a user's public profile as the users service returns it.
BODY = json.dumps({
    "id": 0, "first_name": "Ada", "last_name": "Lovelace", "title": "Countess", "version": 1,
    "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:00.000000Z",
}).encode()


async def user(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json", headers={"ETag": '"1"'})


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_get("/users/{id}", user)
    app.router.add_get("/-/health", lambda request: web.json_response({"status": "ok"}))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
