"""The cache invalidator: MariaDB's row-based binary log read as a replica, each change applied to the cache."""
