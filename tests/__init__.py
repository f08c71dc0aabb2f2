"""The test suite: pytest against real Redis, MariaDB and our own processes."""
