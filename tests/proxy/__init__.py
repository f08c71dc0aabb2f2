"""Tests of the proxy's modules."""
