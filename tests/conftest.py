"""Test configuration: server fixtures are plugins under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.dockerd",
    "tests.fixtures.servers",
    "tests.fixtures.fleet",
    "tests.fixtures.embedded",
    "tests.fixtures.hostnet",
]
