"""The snapshot a migration's destination holds, kept beside its record
(``migration_state.hold``/``take_held``): taken once (a sync about to run changes the
destination), anything unreadable is no trust at all."""

from __future__ import annotations

from pathlib import Path

from common.jobs.migration_state import held_path, hold, take_held


def test_the_held_snapshot_is_taken_once(tmp_path: Path) -> None:
    state = tmp_path / "m1.verified.json"
    assert held_path(state) == tmp_path / "m1.held"
    assert take_held(state) is None  # nothing recorded
    hold(state, "ab" * 32)
    assert take_held(state) == "ab" * 32
    assert take_held(state) is None and not held_path(state).exists()


def test_a_damaged_or_odd_held_file_is_no_trust(tmp_path: Path) -> None:
    state = tmp_path / "m2.verified.json"
    hold(state, "")  # a backup without a snapshot id (an archive): nothing written
    assert not held_path(state).exists()
    held_path(state).write_text("zz" * 32)
    assert take_held(state) is None and not held_path(state).exists()
    held_path(state).write_text("ab" * 16)
    assert take_held(state) is None
