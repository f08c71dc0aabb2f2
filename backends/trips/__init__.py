"""The trips service: a trip follows a path between two times, and users join it as members."""
