"""The users service: registration, tokens, profiles and name search."""
