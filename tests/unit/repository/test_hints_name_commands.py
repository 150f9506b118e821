"""The hints of repository errors name commands that exist: there is no `repository check`
or `repair index` command (`volkeeper repair TARGET [--read-data] [--dry-run]` checks,
re-indexes and repairs)."""

from __future__ import annotations

from pathlib import Path

import common.repository

ROOT = Path(common.repository.__file__).parent


def test_no_hint_names_a_command_that_does_not_exist() -> None:
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in sorted(ROOT.rglob("*.py"))
           for n, line in enumerate(p.read_text().splitlines(), 1)
           if not line.lstrip().startswith("#")
           and ("run a repository check" in line or "`repair index`" in line)]
    assert bad == []
