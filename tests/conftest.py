"""Shared fixtures live in ``tests/fixtures/``; each file there is a pytest plugin."""

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.sandbox",
    "tests.fixtures.logs",
]
