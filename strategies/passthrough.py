"""Passthrough: forward the request as it is; nothing is read from or stored in the cache."""
from __future__ import annotations

from proxy.httpcache import cache_status
from strategies.base import Context, Reply, Strategy, register_strategy


@register_strategy
class Passthrough(Strategy):
    name = "passthrough"

    async def _handle(self, ctx: Context) -> Reply:
        status = cache_status(fwd="bypass", detail="passthrough")
        return await self.forward(ctx, status, "bypass", "passthrough")
