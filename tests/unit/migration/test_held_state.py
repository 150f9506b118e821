"""The snapshot a migration's destination holds, kept beside its record
(``migration_steps._hold``/``_take_held``): taken once (a sync about to run changes the
destination), anything unreadable is no trust at all."""

from __future__ import annotations

from pathlib import Path

from common.jobs.migration_steps import _held, _hold, _take_held


def test_the_held_snapshot_is_taken_once(tmp_path: Path) -> None:
    state = tmp_path / "m1.verified.json"
    assert _held(state) == tmp_path / "m1.held"
    assert _take_held(state) is None  # nothing recorded
    _hold(state, "ab" * 32)
    assert _take_held(state) == "ab" * 32
    assert _take_held(state) is None and not _held(state).exists()


def test_a_damaged_or_odd_held_file_is_no_trust(tmp_path: Path) -> None:
    state = tmp_path / "m2.verified.json"
    _hold(state, "")  # a backup without a snapshot id (an archive): nothing written
    assert not _held(state).exists()
    _held(state).write_text("zz" * 32)
    assert _take_held(state) is None and not _held(state).exists()
    _held(state).write_text("ab" * 16)
    assert _take_held(state) is None
