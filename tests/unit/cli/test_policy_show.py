"""What `volkeeper policy create|list|show` print for a person: the next run ahead as "in
…" (it read "0s ago" up to a minute ahead), the last run, the selected volumes under a
label of their own (they were printed under "consistent"), retention without Python
lists, and a note when the policy selects no volume at all (a mistyped name or label made
a policy that never backs anything up, silently)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.cli.test_release import _cli


def test_show_and_list_read_as_sentences_and_an_empty_selection_is_noted(
        tmp_path: Path) -> None:
    made = _cli(tmp_path, "policy", "create", "app", "--volume", "app", "--schedule",
                "@every 30s", "--keep-last", "2", "--keep-tag", "release",
                "--keep-tag", "a,b")
    assert made.returncode == 0, made.stderr
    assert "policy app created" in made.stdout
    assert "note: policy app selects no volume now" in made.stderr
    quiet = _cli(tmp_path, "policy", "create", "db", "--volume", "db", "--schedule",
                 "@daily", "--json")
    assert quiet.returncode == 0 and "note:" not in quiet.stderr, quiet.stderr

    shown = _cli(tmp_path, "policy", "show", "app")
    assert shown.returncode == 0, shown.stderr
    lines = {k.strip(): v.strip() for k, _, v in (
        line.partition(":") for line in shown.stdout.splitlines())}
    assert re.fullmatch(r"in \d+s", lines["next run"]), lines["next run"]
    assert lines["last run"] == "never"
    assert lines["retention"] == "last 2, tag release or a,b"
    assert lines["volumes"] == "none match now"

    listed = _cli(tmp_path, "policy", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("app "))
    assert re.search(r"in \d+s\s*$", row), row
    assert "ago" not in listed.stdout
