"""Filesystem snapshots: where a volume's data is, which mount holds it, and the commands
a btrfs, ZFS or LVM snapshot is taken and dropped with (only btrfs runs end to end:
tests/integration/embedded/test_snapshots.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.docker import ContainerRef, VolumeInfo
from common.hooks.snapshot_source import SnapshotReport, requested_mode
from common.hooks.snapshots import (
    SnapshotUnavailable,
    btrfs_plan,
    choose,
    data_path,
    drop_recorded,
    lvm_plan,
    source_of,
    zfs_plan,
)

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/pool rw shared:20 - btrfs /dev/loop0 rw,space_cache=v2
41 40 0:36 / /srv/pool/deep\\040dir rw shared:21 - zfs tank/apps rw,xattr
42 22 253:0 / /data rw shared:22 - xfs /dev/mapper/vg0-apps rw
"""


def test_the_data_of_a_local_volume_is_its_mountpoint_or_its_bind_device() -> None:
    assert data_path("local", "/var/lib/docker/volumes/v/_data", {}) == Path(
        "/var/lib/docker/volumes/v/_data")
    assert data_path("local", "/x", {"type": "none", "o": "bind",
                                     "device": "/srv/pool/app"}) == Path("/srv/pool/app")
    assert data_path("local", "/x", {"type": "nfs", "o": "addr=1.2.3.4",
                                     "device": ":/export"}) is None
    assert data_path("local", "/x", {"type": "tmpfs", "device": "tmpfs"}) is None
    assert data_path("rexray", "/x", {}) is None


def test_the_mount_holding_a_path_is_the_longest_matching_mount_point() -> None:
    src = source_of(Path("/srv/pool/app/db"), MOUNTINFO)
    assert src is not None and (src.fstype, src.mount, src.device) == (
        "btrfs", Path("/srv/pool"), "/dev/loop0")
    deep = source_of(Path("/srv/pool/deep dir/x"), MOUNTINFO)
    assert deep is not None and (deep.fstype, deep.device) == ("zfs", "tank/apps")
    root = source_of(Path("/srv/poolside"), MOUNTINFO)  # a prefix, not a parent
    assert root is not None and root.fstype == "ext4"


def test_a_btrfs_snapshot_goes_into_the_subvolume_and_leaves_itself_out() -> None:
    plan = btrfs_plan(Path("/srv/pool/app"), Path("/srv/pool/app"), "app-j1")
    assert plan.create == [["btrfs", "subvolume", "snapshot", "-r", "/srv/pool/app",
                            "/srv/pool/app/.volkeeper-snapshots/app-j1"]]
    assert plan.drop == [["btrfs", "subvolume", "delete",
                          "/srv/pool/app/.volkeeper-snapshots/app-j1"]]
    assert plan.read_path == Path("/srv/pool/app/.volkeeper-snapshots/app-j1")
    assert plan.excludes == ["/.volkeeper-snapshots"]
    assert plan.record()["dirs"] == ["/srv/pool/app/.volkeeper-snapshots"]
    # data below the subvolume's root: read at the same place inside the snapshot
    below = btrfs_plan(Path("/srv/pool/vols/db/_data"), Path("/srv/pool"), "db-j2")
    assert below.read_path == Path("/srv/pool/.volkeeper-snapshots/db-j2/vols/db/_data")
    assert below.excludes == []


def test_a_zfs_snapshot_is_read_through_the_datasets_snapshot_directory() -> None:
    plan = zfs_plan("tank/apps", Path("/srv/apps"), Path("/srv/apps/db"), "db-j1")
    assert plan.create == [["zfs", "snapshot", "tank/apps@db-j1"]]
    assert plan.drop == [["zfs", "destroy", "tank/apps@db-j1"]]
    assert plan.read_path == Path("/srv/apps/.zfs/snapshot/db-j1/db")
    assert plan.handle == "tank/apps@db-j1"


def test_an_lvm_snapshot_is_created_mounted_read_only_and_removed() -> None:
    plan = lvm_plan("vg0", "apps", "xfs", Path("/data"), Path("/data/db"), "db-j1")
    assert plan.create == [
        ["lvcreate", "--snapshot", "-l", "10%ORIGIN", "--name", "apps-db-j1", "vg0/apps"],
        ["mount", "-t", "xfs", "-o", "ro,nouuid", "/dev/vg0/apps-db-j1",
         "/run/volkeeper/snapshots/apps-db-j1"]]
    assert plan.drop == [["umount", "/run/volkeeper/snapshots/apps-db-j1"],
                         ["lvremove", "--force", "vg0/apps-db-j1"]]
    assert plan.read_path == Path("/run/volkeeper/snapshots/apps-db-j1/db")
    ext4 = lvm_plan("vg0", "apps", "ext4", Path("/data"), Path("/data"), "j", size="2G")
    assert ext4.create[0][2:4] == ["-L", "2G"] and ext4.create[1][4] == "ro"


def test_an_explicit_kind_the_filesystem_cannot_take_is_refused_auto_falls_back(
        tmp_path: Path) -> None:
    with pytest.raises(SnapshotUnavailable) as e:
        choose("btrfs", "v", tmp_path, "v-j")
    assert "not btrfs" in e.value.message and "--snapshot auto" in (e.value.hint or "")
    plan, note = choose("auto", "v", tmp_path, "v-j")
    assert plan is None and "no filesystem snapshot of volume 'v'" in note
    assert choose("off", "v", tmp_path, "v-j") == (None, "")
    with pytest.raises(SnapshotUnavailable, match="Docker API"):
        choose("btrfs", "v", tmp_path, "v-j", direct=False)
    with pytest.raises(SnapshotUnavailable, match="driver or mount options"):
        choose("zfs", "v", None, "v-j")
    with pytest.raises(SnapshotUnavailable, match="unknown snapshot mode"):
        choose("sometimes", "v", tmp_path, "v-j")


def test_the_mode_comes_from_the_request_else_the_volume_else_a_container() -> None:
    ctr = ContainerRef("c1", "db", "running", {"volkeeper.snapshot": "btrfs"})
    info = VolumeInfo("v", "local", "/x", {}, None, None, (ctr,))
    assert requested_mode(info, None) == "btrfs"
    assert requested_mode(info, "off") == "off"
    labelled = VolumeInfo("v", "local", "/x", {"volkeeper.snapshot": "Auto"}, None, None,
                          (ctr,))
    assert requested_mode(labelled, None) == "auto"
    assert requested_mode(VolumeInfo("v", "local", "/x", {}, None, None, ()), None) == "off"
    assert SnapshotReport().as_result() == {}


def test_dropping_a_recorded_snapshot_that_is_gone_is_a_no_op(tmp_path: Path) -> None:
    plan = btrfs_plan(tmp_path, tmp_path, "gone")
    (tmp_path / ".volkeeper-snapshots").mkdir()
    assert drop_recorded(plan.record()) is False
    assert not (tmp_path / ".volkeeper-snapshots").exists()  # its empty directory went
