"""Shared fixtures. Each feature keeps its fixtures in a module of tests/fixtures/, listed here."""

pytest_plugins = [
    "tests.fixtures.core",
    "tests.fixtures.s3",
    "tests.fixtures.browser",
    "tests.fixtures.api",
    "tests.fixtures.pinger",
    "tests.fixtures.fleet",
    "tests.fixtures.simulator",
    "tests.fixtures.recording",
    "tests.fixtures.prices",
]
