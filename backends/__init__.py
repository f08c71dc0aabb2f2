"""The backend services (users, paths, trips) behind the gateway, with their schema and seed."""
