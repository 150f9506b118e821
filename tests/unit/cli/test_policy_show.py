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



def test_a_new_policy_backs_up_to_the_configured_default_target(tmp_path: Path) -> None:
    """Without --target a policy uses VOLKEEPER_DEFAULT_TARGET, as `volkeeper backup` does
    (it always said local)."""
    import json
    import os
    import subprocess
    import sys

    from common.db import catalog as cat
    from tests.unit.cli.test_release import REPO, catalog

    with catalog(tmp_path) as s:
        cat.ensure_target(s, "offsite", (tmp_path / "offsite").as_uri())
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
    env |= {"VOLKEEPER_HOME": str(tmp_path), "VOLKEEPER_HOST_NAME": "laptop",
            "VOLKEEPER_DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
            "VOLKEEPER_DEFAULT_TARGET": "offsite"}
    made = subprocess.run([sys.executable, "-m", "cli.main", "policy", "create", "nightly",
                           "--volume", "db", "--schedule", "@daily", "--json"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["targets"] == ["offsite"]
