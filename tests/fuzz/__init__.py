"""Fuzz and hostile-input tests through the whole stack."""
