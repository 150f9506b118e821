"""Checking one snapshot (only what it references), and comparing a restored directory
with a snapshot's tree (what drills and replace-restores of repo snapshots use)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.engine.repo_verify import compare_tree
from common.errors import Refused
from common.progress import NullTracker
from common.repository import ids
from common.repository.backup.archiver import backup_directory, iter_nodes
from common.repository.check.checker import check_snapshot
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.repository.restore.restorer import restore_snapshot
from tests.unit.repository.test_backup import make_volume, new_repo


def _pack_of(repo: Repository, snap: Snapshot, rel: str) -> tuple[bytes, bytes]:
    index = repo.load_index().index
    node = dict(iter_nodes(repo, snap.tree))[rel]
    entry = index.lookup(node.content[0])
    assert entry is not None
    return entry.pack_id, entry.blob_id


def _flip(repo: Repository, pack_id: bytes, blob_id: bytes) -> None:
    key = ids.pack_key(pack_id)
    data = bytearray(repo.backend.get_bytes(key))
    entry = repo.load_index().index.lookup(blob_id)
    assert entry is not None
    data[entry.offset + 50] ^= 1
    repo.backend.put_bytes(key, bytes(data))


def _two_snapshots(tmp_path: Path) -> tuple[Repository, Snapshot, Snapshot]:
    repo = new_repo()
    a = backup_directory(repo, make_volume(tmp_path / "a", seed=1), host="h", volume="a")
    b = backup_directory(repo, make_volume(tmp_path / "b", seed=2), host="h", volume="b")
    return repo, a, b


def test_structure_passes_a_flipped_byte_and_read_data_names_its_pack_and_file(
        tmp_path: Path) -> None:
    repo, a, _ = _two_snapshots(tmp_path)
    clean = check_snapshot(repo, a, read_data=True)
    assert clean.ok, clean.problems
    assert clean.packs == clean.packs_read == clean.packs_selected > 1
    assert clean.blobs_read == clean.blobs
    pack_id, blob_id = _pack_of(repo, a, "random.bin")
    _flip(repo, pack_id, blob_id)

    structure = check_snapshot(repo, a)
    assert structure.ok and structure.packs_read == 0  # index and pack header are intact
    report = check_snapshot(repo, a, read_data=True)
    by_id = {p.object_id: p for p in report.problems}
    assert set(by_id) == {pack_id.hex(), blob_id.hex()}
    assert by_id[pack_id.hex()].kind == "pack" and by_id[pack_id.hex()].paths == ["/random.bin"]
    assert by_id[blob_id.hex()].paths == ["/random.bin"]


def test_a_missing_pack_is_found_by_the_structure_check_with_its_files(tmp_path: Path) -> None:
    repo, a, _ = _two_snapshots(tmp_path)
    pack_id, _ = _pack_of(repo, a, "text.log")
    repo.backend.delete(ids.pack_key(pack_id))
    report = check_snapshot(repo, a)
    [problem] = [p for p in report.problems if p.kind == "pack"]
    assert problem.object_id == pack_id.hex() and "missing" in problem.message
    assert "/text.log" in problem.paths


def test_damage_only_another_snapshot_references_does_not_fail_this_one(
        tmp_path: Path) -> None:
    repo, a, b = _two_snapshots(tmp_path)
    pack_b, blob_b = _pack_of(repo, b, "random.bin")
    index = repo.load_index().index
    def packs(snap: Snapshot) -> set[bytes]:
        return {index.lookup(c).pack_id  # type: ignore[union-attr]
                for _, n in iter_nodes(repo, snap.tree) for c in n.content}

    only_b = sorted(packs(b) - packs(a))
    assert pack_b in only_b and len(only_b) > 1
    _flip(repo, pack_b, blob_b)
    repo.backend.delete(ids.pack_key(next(p for p in only_b if p != pack_b)))
    assert check_snapshot(repo, a, read_data=True).ok
    assert not check_snapshot(repo, b, read_data=True).ok


def test_a_subset_reads_a_seeded_share_of_the_snapshots_packs(tmp_path: Path) -> None:
    repo, a, _ = _two_snapshots(tmp_path)
    first = check_snapshot(repo, a, subset=0.5, seed=7)
    assert first.ok and first.seed == 7
    assert first.packs_selected == first.packs_read == -(-first.packs // 2)
    assert 0 < first.packs_read < first.packs
    again = check_snapshot(repo, a, subset=0.5, seed=7)
    assert again.bytes_read == first.bytes_read and again.blobs_read == first.blobs_read
    unseeded = check_snapshot(repo, a, subset=0.01)
    assert unseeded.seed is not None and unseeded.packs_read == 1


def test_compare_tree_passes_a_restore_and_names_every_kind_of_difference(
        tmp_path: Path) -> None:
    repo, a, _ = _two_snapshots(tmp_path)
    dest = tmp_path / "restored"
    restore_snapshot(repo, a, dest)
    ok = compare_tree(repo, a, dest, NullTracker())
    assert ok.ok, ok.problems
    assert ok.entries_checked == a.stats.files + a.stats.dirs  # dirs counts the root

    keep = {p: os.stat(p).st_mtime_ns for p in (dest, dest / "dir0" / "nested",
                                                 dest / "random.bin")}
    st = os.stat(dest / "text.log")
    os.utime(dest / "text.log", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    os.chmod(dest / "empty", 0o600 if (st.st_mode & 0o777) != 0o600 else 0o644)
    raw = bytearray((dest / "random.bin").read_bytes())
    raw[12345] ^= 1
    (dest / "random.bin").write_bytes(bytes(raw))
    (dest / "dir0" / "nested" / "small0.txt").unlink()
    (dest / "stray").write_text("x")
    for p, mtime in keep.items():  # only the differences made on purpose
        os.utime(p, ns=(mtime, mtime))
    report = compare_tree(repo, a, dest, NullTracker())
    text = "\n".join(report.problems)
    assert not report.ok and report.problem_count == 5, text
    assert "text.log: mtime_ns" in text
    assert "empty: mode" in text
    assert "random.bin: content: differs" in text
    assert "dir0/nested/small0.txt: in the backup but not in the volume" in text
    assert "/stray: in the volume but not in the backup" in text


def test_a_damaged_index_file_is_named_when_referenced_blobs_lose_their_index(
        tmp_path: Path) -> None:
    repo, a, _ = _two_snapshots(tmp_path)
    keys = [o.key for o in repo.backend.list(ids.INDEX_PREFIX)]
    for key in keys:  # every index file unreadable: nothing the snapshot needs is indexed
        raw = bytearray(repo.backend.get_bytes(key))
        raw[len(raw) // 2] ^= 1
        repo.backend.put_bytes(key, bytes(raw))
    report = check_snapshot(repo, a)
    kinds = {p.kind for p in report.problems}
    assert kinds == {"blob", "index"}
    assert {p.object_id for p in report.problems if p.kind == "index"} == \
        {ids.id_from_key(k).hex() for k in keys}
    [root] = [p for p in report.problems if p.object_id == a.tree.hex()]
    assert root.paths == ["/ (whole directory)"]


@pytest.mark.skipif(os.geteuid() != 0, reason="making device nodes needs root")
def test_a_snapshot_with_a_device_node_is_refused_unless_devices_are_allowed(
        tmp_path: Path) -> None:
    repo = new_repo()
    src = tmp_path / "src"
    (src / "dev").mkdir(parents=True)
    (src / "data.txt").write_text("data")
    os.mkfifo(src / "pipe")
    os.mknod(src / "dev" / "zero", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    snap = backup_directory(repo, src, host="h", volume="v")
    with pytest.raises(Refused, match=r"'dev/zero': a char device node \(1:5\)"):
        restore_snapshot(repo, snap, tmp_path / "refused", devices=False)
    restore_snapshot(repo, snap, tmp_path / "allowed", devices=True)
    st = os.lstat(tmp_path / "allowed" / "dev" / "zero")
    assert stat.S_ISCHR(st.st_mode) and os.minor(st.st_rdev) == 5
    assert compare_tree(repo, snap, tmp_path / "allowed", NullTracker()).ok
