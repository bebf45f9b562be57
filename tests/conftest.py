"""Shared fixtures: each fixture module under tests/fixtures owns one real service or data source."""

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.kafka",
    "tests.fixtures.prometheus",
]
