"""Passthrough: forward the request as it is; nothing is read from or stored in the cache."""
from __future__ import annotations

from types import MappingProxyType

from cachegate.routes import OPTIONS
from strategies.base import Context, Outcome, Reply, Strategy

PASSTHROUGH = Outcome.bypass("passthrough")


class Passthrough(Strategy):
    name = "passthrough"
    forbidden = MappingProxyType({option: "passthrough stores and drops nothing; remove it"
                                  for option in OPTIONS})

    async def _handle(self, ctx: Context) -> Reply:
        ctx.outcome = PASSTHROUGH
        return await self.forward(ctx)
