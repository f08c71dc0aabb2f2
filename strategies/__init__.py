"""Cache strategies: one module per policy, the Strategy template in base.py, the registry in registry.py."""
