"""A migration's destination state (``migration_state``: the record and the held
snapshot) counts only in the boot that wrote it: nobody waits for the writeback of what it
vouches for, so after a reboot there is nothing recorded and nothing held."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.jobs import migration_state
from common.jobs.migration_state import hold, load_record, save_record, take_held

SEEN = {"a.txt": (12, 5, 1_700_000_000_000_000_000, 1_700_000_000_000_000_001, "ab" * 32),
        "d/b.bin": (13, 0, 1, 2, "")}


def _boot(monkeypatch: pytest.MonkeyPatch, boot: str | None) -> None:
    monkeypatch.setattr(migration_state, "boot_id", lambda: boot)


def test_a_record_round_trips_in_the_same_boot(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _boot(monkeypatch, "boot-1")
    state = tmp_path / "migrations" / "m1.verified.json"
    save_record(state, dict(SEEN))
    assert load_record(state) == SEEN
    assert json.loads(state.read_text())["boot_id"] == "boot-1"


def test_a_record_of_another_boot_is_nothing_recorded(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "m1.verified.json"
    _boot(monkeypatch, "boot-1")
    save_record(state, dict(SEEN))
    _boot(monkeypatch, "boot-2")
    assert load_record(state) == {}
    _boot(monkeypatch, None)  # unreadable now: not the boot that wrote it either
    assert load_record(state) == {}


def test_an_old_format_record_is_nothing_recorded(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "m1.verified.json"
    state.write_text(json.dumps({k: list(v) for k, v in SEEN.items()}))  # no boot id
    _boot(monkeypatch, "boot-1")
    assert load_record(state) == {}
    _boot(monkeypatch, None)
    assert load_record(state) == {}
    state.write_text(json.dumps({"boot_id": ["x"], "seen": SEEN}))  # a file named boot_id
    assert load_record(state) == {}


def test_without_a_boot_id_a_record_counts_while_there_is_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "m1.verified.json"
    _boot(monkeypatch, None)
    save_record(state, dict(SEEN))
    assert load_record(state) == SEEN
    _boot(monkeypatch, "boot-1")
    assert load_record(state) == {}


def test_a_snapshot_held_in_another_boot_is_not_held(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "m1.verified.json"
    _boot(monkeypatch, "boot-1")
    hold(state, "ab" * 32)
    assert take_held(state) == "ab" * 32
    hold(state, "ab" * 32)
    _boot(monkeypatch, "boot-2")
    assert take_held(state) is None
    assert not migration_state.held_path(state).exists()  # forgotten all the same


def test_an_old_format_held_file_is_not_held(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "m1.verified.json"
    _boot(monkeypatch, "boot-1")
    migration_state.held_path(state).write_text("ab" * 32)  # the id alone, no boot id
    assert take_held(state) is None
    migration_state.held_path(state).write_text("12" * 32)  # parses as a JSON number
    assert take_held(state) is None


def test_the_boot_id_is_this_kernels(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = migration_state.boot_id()
    if Path("/proc/sys/kernel/random/boot_id").is_file():
        assert real and len(real) == 36 and real == migration_state.boot_id()
    monkeypatch.setattr(migration_state, "BOOT_ID", tmp_path / "missing")
    assert migration_state.boot_id() is None


def test_the_record_this_process_saved_is_taken_as_a_copy_until_its_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the cut-over's apply loads the record the catch-up's apply (or the pre-copy) saved
    # on this worker a moment before: a copy of it, not its JSON parsed again
    _boot(monkeypatch, "boot-1")
    state = tmp_path / "m1.verified.json"
    save_record(state, dict(SEEN))
    monkeypatch.setattr(migration_state.json, "loads", lambda _t: pytest.fail("parsed"))
    got = load_record(state)
    assert got == SEEN
    got["a.txt"] = (0, 0, 0, 0, "")  # the caller's copy: the next load is unchanged
    assert load_record(state) == SEEN
    monkeypatch.undo()
    _boot(monkeypatch, "boot-1")
    # written by anyone else (a new file): read from the file
    other = {"c": (1, 2, 3, 4, "")}
    part = state.with_name("x.part")
    part.write_text(json.dumps({"boot_id": "boot-1", "seen": other}))
    part.replace(state)
    assert load_record(state) == other
    # forgotten with the record
    save_record(state, dict(SEEN))
    migration_state.forget(state)
    assert load_record(state) == {} and migration_state._cached is None
