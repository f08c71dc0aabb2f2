"""What the three services share: db pool, JSON errors, tokens, validation and the app factory."""
