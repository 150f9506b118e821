"""The version a worker reports (``host_rows.VERSION``, a constant so start-up does not
read package metadata) is the package's version in pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from common.jobs.host_rows import VERSION


def test_worker_version_is_the_package_version() -> None:
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["project"]["version"] == VERSION
