"""Tests of the load test's parts and its quick mode."""
