"""Tests of the kernel: the config, its values and templates, the token rules."""
