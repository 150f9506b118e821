"""The code base stays ``ruff`` and ``mypy`` clean (configuration in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.util import unavailable

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run_tool(module: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` from the repository root and capture its output."""
    if shutil.which(module) is None:
        try:
            __import__(module)
        except ImportError:
            unavailable(f"{module} is not installed (pip install -e '.[test]')")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _report(tool: str, res: subprocess.CompletedProcess[str]) -> str:
    return f"{tool} exited with {res.returncode}:\n{res.stdout}\n{res.stderr}"


def test_ruff_finds_no_problems() -> None:
    res = _run_tool("ruff", ["check", "--no-cache", "--output-format=concise", "."])
    assert res.returncode == 0, _report("ruff check", res)


@pytest.mark.timeout(900)
def test_mypy_finds_no_type_errors() -> None:
    res = _run_tool("mypy", [])
    assert res.returncode == 0, _report("mypy", res)
