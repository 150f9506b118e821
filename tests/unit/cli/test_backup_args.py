"""`volkeeper backup`'s group options, combined wrongly, are refused by the CLI in its own
words (its options), before anything is asked of the API, whose message names the fields
of its request body ("invalid request: body")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.test_release import _cli


@pytest.mark.parametrize(("args", "says"), [
    (["--volume", "a"], "a named group needs both --group NAME and its volumes"),
    (["--group", "g"], "a named group needs both --group NAME and its volumes"),
    (["--project", "shop", "--volume", "a"], "give no --group or --volume with it"),
    (["--project", "shop", "--group", "g"], "give no --group or --volume with it"),
])
def test_wrong_group_options_are_named_as_options(tmp_path: Path, args: list[str],
                                                  says: str) -> None:
    p = _cli(tmp_path, "backup", *args)
    assert p.returncode == 1
    assert says in p.stderr and "body" not in p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_a_suffix_without_a_group_is_refused_not_ignored(tmp_path: Path) -> None:
    p = _cli(tmp_path, "restore", "0123456789abcdef", "--suffix", "-copy")
    assert p.returncode == 1
    assert "--suffix names the volumes of a --group restore" in p.stderr
    assert "--into NAME" in p.stderr and "Traceback" not in p.stderr
