"""Tests of the Redis cache store."""
