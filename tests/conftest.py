"""Test configuration: server fixtures are plugins under tests/fixtures/.

``lanes`` marks everything under tests/integration/ ``integration`` and fails a test outside
it that would start a server; ``hostnet`` fails the session if the host's network
interfaces changed during it; ``parallel`` groups the tests for ``pytest -n 2``.
"""

pytest_plugins = [
    "tests.fixtures.lanes",
    "tests.fixtures.s3",
    "tests.fixtures.dockerd",
    "tests.fixtures.servers",
    "tests.fixtures.fleet",
    "tests.fixtures.embedded",
    "tests.fixtures.dbimages",
    "tests.fixtures.hostnet",
    "tests.fixtures.parallel",
]
