"""The cache invalidator: MariaDB's row-based binary log, read as a replica, applied to the cache."""
