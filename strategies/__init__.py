"""Cache strategies: one module per policy; the registry and the base class live in strategies.base."""
from strategies.base import (STRATEGIES, Context, Reply, Request, Strategy, get_strategy, known_strategies,
                             register_strategy)
from strategies.passthrough import Passthrough
from strategies.read_through import ReadThrough
from strategies.write_through import WriteThrough

__all__ = ["STRATEGIES", "Context", "Passthrough", "ReadThrough", "Reply", "Request", "Strategy",
           "WriteThrough", "get_strategy", "known_strategies", "register_strategy"]
