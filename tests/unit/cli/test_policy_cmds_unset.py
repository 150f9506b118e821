"""`volkeeper policy update` takes a policy's copy targets and its keep_tag rule away with
'' (as --exclude '' empties the excludes): `--copy-to ''` was refused as an unknown
target '' and `--keep-tag ''` as not a list of tags, so neither could be undone from the
command line — and a target a policy names cannot be removed."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli.test_policy_consistency_cmd import policy
from tests.unit.cli.test_release import _cli


def test_copy_to_and_keep_tag_are_removed_with_an_empty_value(tmp_path: Path) -> None:
    added = _cli(tmp_path, "targets", "add", "t2", (tmp_path / "t2").as_uri())
    assert added.returncode == 0, added.stderr
    p = policy(tmp_path, "create", "app", "--volume", "app", "--schedule", "@daily",
               "--copy-to", "t2", "--keep-last", "3", "--keep-tag", "release")
    assert (p["targets"], p["retention"]) == (["local", "t2"],
                                              {"keep_last": 3, "keep_tag": ["release"]})
    refused = _cli(tmp_path, "targets", "remove", "t2")
    assert refused.returncode == 1 and "named by policy 'app'" in refused.stderr
    p = policy(tmp_path, "update", "app", "--copy-to", "", "--keep-tag", "")
    assert (p["targets"], p["retention"]) == (["local"], {"keep_last": 3})
    removed = _cli(tmp_path, "targets", "remove", "t2")
    assert removed.returncode == 0, removed.stderr
    p = policy(tmp_path, "create", "db", "--volume", "db", "--schedule", "@daily",
               "--copy-to", "", "--keep-last", "1")
    assert p["targets"] == ["local"]
