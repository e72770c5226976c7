"""Top-level test configuration: shared fixtures are plugins under ``tests/``."""

pytest_plugins = ["tests.conftest_db", "tests.live"]
