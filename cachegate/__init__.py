"""The kernel every part of cachegate shares (config, its errors, the token rules), and the command."""
