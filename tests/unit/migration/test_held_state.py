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


def test_forget_removes_the_record_the_held_snapshot_and_half_written_copies(
        tmp_path: Path) -> None:
    from common.jobs.migration_state import forget, load_record, save_record

    state = tmp_path / "m1.verified.json"
    save_record(state, {"a": (1, 2, 3, 4, "d")})
    hold(state, "ab" * 32)
    (tmp_path / "m1.verified.json.part").write_text("{")
    (tmp_path / "m1.held.part").write_text("ab")
    assert load_record(state) == {"a": (1, 2, 3, 4, "d")}
    forget(state)
    assert sorted(tmp_path.iterdir()) == []
    forget(state)  # nothing left: no error
