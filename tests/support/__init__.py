"""The shared harness: configs, Redis clients, database rows, records, the strategy and e2e worlds."""
