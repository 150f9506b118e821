"""Exclude patterns: the one matcher every way of reading a volume applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.archive.excludes import Excludes, excluded_paths, parse_ignore_file
from common.errors import InvalidInput
from common.jobs.inputs import exclude_patterns


@pytest.mark.parametrize(("pattern", "path", "is_dir", "hit"), [
    ("*.tmp", "a.tmp", False, True),
    ("*.tmp", "deep/er/a.tmp", False, True),
    ("*.tmp", "a.tmpx", False, False),
    ("cache/**", "cache", True, False),
    ("cache/**", "cache/x", False, True),
    ("cache/**", "cache/s/y", False, True),
    ("cache/**", "other/cache/y", False, False),
    ("cache", "other/cache", True, True),
    ("/top", "top", False, True),
    ("/top", "sub/top", False, False),
    ("logs/", "logs", True, True),
    ("logs/", "logs", False, False),
    ("a/**/z", "a/z", False, True),
    ("a/**/z", "a/b/c/z", False, True),
    ("a/*/z", "a/b/c/z", False, False),
    ("[!x]y", "ay", False, True),
    ("[!x]y", "xy", False, False),
    ("f?o", "foo", False, True),
    ("f?o", "f/o", False, False),
    ("we ird*", "we ird (1)", False, True),
])
def test_a_pattern_matches_like_a_small_gitignore(pattern: str, path: str, is_dir: bool,
                                                  hit: bool) -> None:
    assert Excludes.of([pattern]).matches(path, is_dir) is hit


@pytest.mark.parametrize("bad", ["../x", "a/../b", "/", "./a"])
def test_patterns_that_leave_the_volume_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="exclude pattern"):
        Excludes.of([bad])


def test_an_ignore_file_has_one_pattern_a_line_and_comment_lines() -> None:
    text = "# caches\ncache/**\n\n  *.tmp  \n#*.log\n\\#*#\n"
    assert parse_ignore_file(text) == ["cache/**", "*.tmp", "#*#"]
    assert Excludes.of(["a", " a ", ""]).patterns == ("a",)
    assert not Excludes.of([])


def test_a_pattern_starting_with_a_hash_is_a_pattern_not_a_comment() -> None:
    """``--exclude '#*#'`` (editors' autosave files) was dropped without a word."""
    excludes = Excludes.of(["#*#", "a"])
    assert excludes.patterns == ("#*#", "a")
    assert excludes.matches("d/#notes.txt#", is_dir=False)
    assert not excludes.matches("d/notes.txt", is_dir=False)
    assert exclude_patterns(["#scratch"]) == ["#scratch"]


def test_a_walk_names_an_excluded_directory_once_and_not_what_is_below(tmp_path: Path
                                                                       ) -> None:
    for rel in ("cache/a/b", "keep/x.tmp", "keep/y", "z.tmp"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "link").symlink_to("cache")
    found = sorted(excluded_paths(tmp_path, Excludes.of(["cache", "*.tmp", "link"])))
    assert found == ["cache", "keep/x.tmp", "link", "z.tmp"]
