"""Repair: the readable blobs of damaged packs are rewritten, the damaged packs removed,
lost data is named (and with forget_broken cut out of the snapshots), and a repair killed
at any write or delete leaves a repository that checks as before or better."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from common.errors import Conflict
from common.repository import ids
from common.repository.backup.archiver import backup_directory
from common.repository.check.checker import check_repository, check_snapshot
from common.repository.core.damage import DAMAGED_PREFIX
from common.repository.core.locks import backup_lock
from common.repository.core.repository import Repository
from common.repository.core.snapshot import list_snapshots
from common.repository.maintenance.repair import repair
from common.repository.restore.restorer import restore_snapshot
from tests.treecmp import compare_trees
from tests.unit.repository.test_backup import make_volume, new_repo
from tests.unit.repository.test_damage import a_small_file, first_chunk, flip

STEPS = ("write packs", "write index", "delete index", "delete pack", "write tree packs",
         "write snapshot", "forget snapshot", "remove damage marks")


class Crash(Exception):
    """Stands for the repair process being killed."""


def damaged(tmp_path: Path) -> tuple[Repository, Path, str, bytes, bytes]:
    """A volume backed up, one small file's blob flipped in a pack that holds other small
    files' blobs too; verify has run. Returns (repo, src, file, its blob, its pack)."""
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h", volume="v")
    small = a_small_file(src)
    pack_id, blob_id = first_chunk(repo, snap, small)
    index = repo.load_index().index
    assert sum(1 for e in index if e.pack_id == pack_id) > 1  # the pack holds more
    flip(repo, pack_id, blob_id)
    assert not check_snapshot(repo, snap, read_data=True).ok  # records the damage
    return repo, src, small, blob_id, pack_id


def damaged_paths(repo: Repository) -> set[str]:
    """Every path a full check names as depending on damage (snapshot prefix dropped)."""
    report = check_repository(repo, read_data=True, record_damage=False)
    return {p.split(":", 1)[1] for problem in report.problems for p in problem.paths}


def test_repair_rewrites_the_readable_blobs_and_removes_the_damaged_pack(
        tmp_path: Path) -> None:
    repo, src, small, blob_id, pack_id = damaged(tmp_path)
    dry = repair(repo, dry_run=True)
    assert dry.packs_damaged == [pack_id.hex()] and dry.blobs_lost == [blob_id.hex()]
    assert repo.backend.stat(ids.pack_key(pack_id))  # a dry run changes nothing

    report = repair(repo)
    assert report.blobs_salvaged >= 1 and report.packs_deleted == 1
    assert report.blobs_lost == [blob_id.hex()]
    [broken] = report.broken
    assert broken.paths == [f"/{small}"]
    assert not list(repo.backend.list(ids.pack_key(pack_id)))
    assert not list(repo.backend.list(DAMAGED_PREFIX))
    after = check_repository(repo, read_data=True)
    assert {p.object_id for p in after.problems} == {blob_id.hex()}  # only what is lost
    assert [p.split(":", 1)[1] for p in after.problems[0].paths] == [f"/{small}"]

    # The file still exists: the next backup stores its chunk again; both snapshots whole.
    new = backup_directory(repo, src, host="h", volume="v")
    assert check_repository(repo, read_data=True).ok
    restored = tmp_path / "restored"
    restore_snapshot(repo, new, restored)
    assert compare_trees(str(src), str(restored)) == []


def test_forget_broken_rewrites_the_snapshot_without_the_lost_file(tmp_path: Path) -> None:
    repo, src, small, _, _ = damaged(tmp_path)
    report = repair(repo, forget_broken_snapshots=True)
    [(old, new)] = report.snapshots_rewritten.items()
    [snap] = list_snapshots(repo)
    assert snap.id.hex() == new and "repaired" in snap.tags
    assert check_snapshot(repo, snap, read_data=True).ok
    restored = tmp_path / "restored"
    restore_snapshot(repo, snap, restored)
    (src / small).unlink()  # everything else restores exactly
    assert compare_trees(str(src), str(restored), check_dir_mtimes=False) == []
    assert old != new


def test_repair_read_data_finds_and_repairs_damage_no_check_recorded(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h", volume="v")
    pack_id, blob_id = first_chunk(repo, snap, "random.bin")
    flip(repo, pack_id, blob_id)
    assert repair(repo).packs_damaged == []  # nothing marked: nothing to do
    report = repair(repo, read_data=True)
    assert report.packs_damaged == [pack_id.hex()] and report.blobs_lost == [blob_id.hex()]
    backup_directory(repo, src, host="h", volume="v")
    assert check_repository(repo, read_data=True).ok


def _crash_at(step: str, nth: int) -> Callable[[str], None]:
    calls = itertools.count()

    def fault(name: str) -> None:
        if name == step and next(calls) == nth:
            raise Crash(f"killed at {step} #{nth}")
    return fault


@pytest.mark.parametrize("step", STEPS)
def test_a_repair_killed_at_any_step_leaves_the_repository_no_worse(
        tmp_path: Path, step: str) -> None:
    nth = 0
    while True:
        case = tmp_path / f"{step.replace(' ', '-')}-{nth}"
        repo, _, small, _, _ = damaged(case)
        before = damaged_paths(repo)
        try:
            repair(repo, forget_broken_snapshots=True, fault=_crash_at(step, nth))
        except Crash:
            pass
        else:
            break  # the step ran fewer than nth + 1 times: every occurrence was tried
        assert damaged_paths(repo) <= before, f"worse after a crash at {step} #{nth}"
        for snap in list_snapshots(repo):  # every snapshot still restores what it can
            out = case / f"restore-{snap.id.hex()[:8]}"
            try:
                restore_snapshot(repo, snap, out)
            except Exception as exc:  # noqa: BLE001 - only the lost file may fail
                assert small.rsplit("/", 1)[-1] in str(exc)
        # Running repair again finishes the job.
        repair(repo, forget_broken_snapshots=True)
        assert check_repository(repo, read_data=True).ok
        assert not list(repo.backend.list(DAMAGED_PREFIX))
        nth += 1
    assert nth >= 1, f"repair never reached {step}"


def _listing(repo: Repository) -> dict[str, bytes]:
    return {o.key: repo.backend.get_bytes(o.key) for o in repo.backend.list(ids.PREFIX)
            if not o.key.startswith(ids.LOCKS_PREFIX)}


def test_repair_is_refused_beside_a_backups_lock_and_a_dry_run_changes_nothing(
        tmp_path: Path) -> None:
    repo, _, _, _, _ = damaged(tmp_path)
    before = _listing(repo)
    with backup_lock(repo, "backup job 7", refresh_every=0), \
            pytest.raises(Conflict, match="backup job 7"):
        repair(repo)
    assert _listing(repo) == before
    repair(repo, dry_run=True)
    assert _listing(repo) == before


def test_repair_rebuilds_a_lost_index_from_the_pack_headers(tmp_path: Path) -> None:
    """Every index file deleted, every pack intact: repair indexes the packs again from
    their sealed headers (nothing is lost), a damaged pack's header is left alone."""
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h", volume="v")
    packs = {e.pack_id for e in repo.load_index().index}
    for obj in list(repo.backend.list(ids.INDEX_PREFIX)):
        repo.backend.delete(obj.key)
    assert not check_snapshot(repo, snap).ok

    before = _listing(repo)
    dry = repair(repo, dry_run=True)
    assert sorted(dry.packs_reindexed) == sorted(p.hex() for p in packs)
    assert dry.broken == [] and dry.blobs_lost == []
    assert _listing(repo) == before  # a dry run writes nothing

    report = repair(repo)
    assert sorted(report.packs_reindexed) == sorted(p.hex() for p in packs)
    assert report.index_files_written == 1 and report.broken == []
    assert check_repository(repo, read_data=True).ok
    restored = tmp_path / "restored"
    restore_snapshot(repo, snap, restored)
    assert compare_trees(str(src), str(restored)) == []
    assert repair(repo).packs_reindexed == []  # indexed now: nothing more to do
