"""Tests of the launcher, its servers and the cachegate command."""
