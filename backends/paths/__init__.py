"""The paths service: start point -> end point, owned by their creator, immutable once made."""
