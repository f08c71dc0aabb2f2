"""Tests of the cache strategies, their registry and the HTTP caching rules."""
