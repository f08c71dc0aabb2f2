"""Mutation testing of the core: cosmic-ray's mutants of each target run against that target's own tests."""
