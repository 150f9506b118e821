"""README: "Every command takes --json". Removing a target and deleting a policy did not
(click's usage error, exit 2); they print one JSON object now."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli.test_release import _cli


def test_target_remove_and_policy_delete_take_json(tmp_path: Path) -> None:
    (tmp_path / "t2").mkdir()
    assert _cli(tmp_path, "targets", "add", "t2", (tmp_path / "t2").as_uri()).returncode == 0
    p = _cli(tmp_path, "targets", "remove", "t2", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"name": "t2", "removed": True}
    made = _cli(tmp_path, "policy", "create", "p1", "--volume", "v", "--schedule", "@daily")
    assert made.returncode == 0, made.stderr
    p = _cli(tmp_path, "policy", "delete", "p1", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"name": "p1", "deleted": True}
