"""Filesystem snapshots instead of a stop: a backup reads a read-only snapshot of the
filesystem that holds the volume's data, so the copy is crash-consistent (one instant,
like a power cut) while the application keeps running. borgmatic's btrfs/ZFS/LVM hooks
are the model.

* **Where the data is** (``data_path``): a ``local`` volume's mountpoint, or the
  ``device`` of a ``local`` bind volume (``driver_opts type=none o=bind device=…``). The
  worker must see that path (it runs on the host), and reads the snapshot directly.
* **Which filesystem** (``source_of``): from ``/proc/self/mountinfo``, the mount holding
  the path: ``btrfs``, ``zfs``, or a device-mapper device LVM knows.
* **A plan** (``Plan``): the commands that take the snapshot, where the volume's data is
  inside it, and the commands that drop it again — ``btrfs subvolume snapshot -r`` of the
  subvolume holding the data into ``<subvolume>/.volkeeper-snapshots/<name>``;
  ``zfs snapshot DATASET@<name>`` read through ``<mountpoint>/.zfs/snapshot/<name>``;
  ``lvcreate -s`` of the logical volume, mounted read-only under ``/run/volkeeper``.
  ``Plan.record`` is what the job row keeps *before* the snapshot is taken, so the
  host's recovery drops a snapshot a killed worker left (``drop_recorded``).
* **Modes** (``choose``): ``off``; ``auto`` — the filesystem's kind when it can snapshot,
  else None with a note (the backup then stops or not as configured); an explicit kind
  (``btrfs``, ``zfs``, ``lvm``) — that or ``SnapshotUnavailable`` saying why.

Only btrfs runs end to end in the tests; ZFS and LVM are built the same way and their
command construction is unit-tested.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import VolkeeperError

log = logging.getLogger(__name__)

MODES = ("off", "auto", "btrfs", "zfs", "lvm")
KINDS = ("btrfs", "zfs", "lvm")
#: the directory a btrfs snapshot goes in, at the root of the snapshotted subvolume
SNAPSHOT_DIR = ".volkeeper-snapshots"
#: where an LVM snapshot is mounted (read-only) while it is read
LVM_MOUNT_ROOT = "/run/volkeeper/snapshots"
#: the size of an LVM snapshot's copy-on-write area, relative to its origin
LVM_SNAPSHOT_SIZE = "10%ORIGIN"
COMMAND_TIMEOUT = 120.0
#: a btrfs subvolume's root directory has this inode number
BTRFS_SUBVOLUME_INO = 256


class SnapshotUnavailable(VolkeeperError):
    """A snapshot was asked for explicitly and the volume's filesystem cannot take one."""

    status_code = 422
    code = "snapshot_unavailable"


class SnapshotFailed(VolkeeperError):
    """A snapshot command failed."""

    code = "snapshot_failed"


@dataclass(frozen=True)
class Source:
    """The mount holding a volume's data: filesystem type, mount point, mount source
    (device, or ZFS dataset) and the data's own path."""

    fstype: str
    mount: Path
    device: str
    data: Path


@dataclass(frozen=True)
class Plan:
    """How one snapshot is taken, read and dropped (see the module doc)."""

    kind: str
    #: what identifies the snapshot (btrfs: its path; zfs: DATASET@name; lvm: VG/LV)
    handle: str
    create: list[list[str]]
    drop: list[list[str]]
    #: where the volume's data is inside the snapshot while it exists
    read_path: Path
    #: directories to make before ``create`` and remove (when empty) after ``drop``
    dirs: list[str] = field(default_factory=list)
    #: volume-relative paths the backup leaves out (the snapshot directory itself)
    excludes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """What the job row keeps so a recovery can drop it (``drop_recorded``)."""
        return {"kind": self.kind, "handle": self.handle, "drop": self.drop,
                "dirs": self.dirs}

    def describe(self) -> str:
        return f"{self.kind} snapshot {self.handle}"


# --- where the data is ---------------------------------------------------------------

def data_path(driver: str, mountpoint: str | None, options: Mapping[str, str]) -> Path | None:
    """The host path of a volume's data: a ``local`` volume's mountpoint, or its bind
    ``device``; None for other drivers and other mounts (tmpfs, nfs …)."""
    if driver != "local":
        return None
    if options:
        device = options.get("device") or ""
        if options.get("type", "none") == "none" and "bind" in (options.get("o") or "") \
                and device.startswith("/"):
            return Path(device)
        return None
    return Path(mountpoint) if mountpoint else None


def _unescape(field_: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return (field_.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def source_of(data: Path, mountinfo: str | None = None) -> Source | None:
    """The mount holding ``data`` (the longest mount point that is a prefix of its real
    path), from ``/proc/self/mountinfo``; None when it cannot be read."""
    try:
        real = Path(os.path.realpath(data))
        text = mountinfo if mountinfo is not None else Path(
            "/proc/self/mountinfo").read_text()
    except OSError:
        return None
    best: Source | None = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        parts, rest = left.split(), right.split()
        if not sep or len(parts) < 5 or len(rest) < 2:
            continue
        mount = Path(_unescape(parts[4]))
        if real != mount and mount not in real.parents:
            continue
        if best is None or len(mount.parts) >= len(best.mount.parts):
            best = Source(fstype=rest[0], mount=mount, device=_unescape(rest[1]), data=real)
    return best


# --- plans ---------------------------------------------------------------------------

def subvolume_root(data: Path, mount: Path) -> Path:
    """The root of the btrfs subvolume holding ``data``: the nearest directory (itself or
    above, not above its mount) whose inode is 256."""
    path = data
    while path != mount and path.stat().st_ino != BTRFS_SUBVOLUME_INO:
        path = path.parent
    return path


def btrfs_plan(data: Path, subvolume: Path, name: str) -> Plan:
    """A read-only snapshot of ``subvolume`` at ``<subvolume>/.volkeeper-snapshots/name``;
    the data is read at the same relative path inside it."""
    where = subvolume / SNAPSHOT_DIR
    snap = where / name
    rel = data.relative_to(subvolume)
    # the snapshot directory lies inside the data only when the data is the subvolume
    excludes = [f"/{SNAPSHOT_DIR}"] if rel == Path(".") else []
    return Plan(kind="btrfs", handle=str(snap),
                create=[["btrfs", "subvolume", "snapshot", "-r", str(subvolume), str(snap)]],
                drop=[["btrfs", "subvolume", "delete", str(snap)]],
                read_path=snap / rel, dirs=[str(where)], excludes=excludes)


def zfs_plan(dataset: str, mount: Path, data: Path, name: str) -> Plan:
    """``zfs snapshot DATASET@name``, read through the dataset's ``.zfs/snapshot/name``."""
    handle = f"{dataset}@{name}"
    return Plan(kind="zfs", handle=handle, create=[["zfs", "snapshot", handle]],
                drop=[["zfs", "destroy", handle]],
                read_path=mount / ".zfs" / "snapshot" / name / data.relative_to(mount))


def lvm_plan(vg: str, lv: str, fstype: str, mount: Path, data: Path, name: str,
             size: str = LVM_SNAPSHOT_SIZE) -> Plan:
    """``lvcreate -s`` of ``vg/lv`` named ``<lv>-<name>``, mounted read-only (XFS needs
    ``nouuid``: the snapshot has its origin's UUID) under ``LVM_MOUNT_ROOT``."""
    snap_lv = f"{lv}-{name}"[:127]
    at = Path(LVM_MOUNT_ROOT) / snap_lv
    options = "ro,nouuid" if fstype == "xfs" else "ro"
    size_opt = ["-l", size] if "%" in size else ["-L", size]
    return Plan(kind="lvm", handle=f"{vg}/{snap_lv}",
                create=[["lvcreate", "--snapshot", *size_opt, "--name", snap_lv,
                         f"{vg}/{lv}"],
                        ["mount", "-t", fstype, "-o", options,
                         f"/dev/{vg}/{snap_lv}", str(at)]],
                drop=[["umount", str(at)], ["lvremove", "--force", f"{vg}/{snap_lv}"]],
                read_path=at / data.relative_to(mount), dirs=[str(at)])


def _lvm_names(device: str) -> tuple[str, str] | None:
    """(VG, LV) of a device-mapper device LVM knows, else None (``lvs`` missing or not
    an LV)."""
    if not device.startswith("/dev/") or shutil.which("lvs") is None:
        return None
    try:
        p = subprocess.run(["lvs", "--noheadings", "-o", "vg_name,lv_name", device],
                           capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = p.stdout.split()
    return (names[0], names[1]) if p.returncode == 0 and len(names) == 2 else None


def plan_for(kind: str, source: Source, name: str) -> Plan | str:
    """The plan of a ``kind`` snapshot of ``source``, or why there is none."""
    where = f"{source.data} is on {source.fstype} ({source.mount})"
    if kind == "btrfs":
        if source.fstype != "btrfs":
            return f"{where}, not btrfs"
        return btrfs_plan(source.data, subvolume_root(source.data, source.mount), name)
    if kind == "zfs":
        if source.fstype != "zfs":
            return f"{where}, not ZFS"
        return zfs_plan(source.device, source.mount, source.data, name)
    lv = _lvm_names(source.device)
    if lv is None:
        return f"{where}, whose device {source.device} is not an LVM logical volume"
    return lvm_plan(lv[0], lv[1], source.fstype, source.mount, source.data, name)


def choose(mode: str, volume: str, data: Path | None, name: str, *,
           direct: bool = True) -> tuple[Plan | None, str]:
    """The snapshot a backup of ``volume`` takes in ``mode`` (see the module doc), and a
    note when ``auto`` found none (why). ``data``: its host path (``data_path``);
    ``direct``: whether the worker may read volumes directly. SnapshotUnavailable when an
    explicit kind cannot be had."""
    if mode not in MODES:
        raise SnapshotUnavailable(f"unknown snapshot mode {mode!r}",
                                  f"use one of {', '.join(MODES)}")
    if mode == "off":
        return None, ""
    why = _unreachable(volume, data, direct)
    source = None if why else source_of(data) if data is not None else None
    if not why and source is None:
        why = f"the mount holding {data} is not known (no /proc/self/mountinfo)"
    plan: Plan | str = why
    if source is not None:
        kinds = [mode] if mode != "auto" else [
            "btrfs" if source.fstype == "btrfs" else "zfs" if source.fstype == "zfs"
            else "lvm"]
        plan = plan_for(kinds[0], source, name)
        if isinstance(plan, Plan) and shutil.which(plan.create[0][0]) is None:
            plan = f"the {plan.create[0][0]} command is not installed on this worker"
    if isinstance(plan, Plan):
        return plan, ""
    if mode == "auto":
        return None, f"no filesystem snapshot of volume {volume!r}: {plan}"
    raise SnapshotUnavailable(
        f"volume {volume!r} cannot be backed up from a {mode} snapshot: {plan}",
        "use --snapshot auto (falls back to stopping the containers or a live copy, as "
        "configured) or --snapshot off, or move the volume onto a "
        f"{mode} filesystem")


def _unreachable(volume: str, data: Path | None, direct: bool) -> str:
    if not direct:
        return "snapshots are read directly and this worker reads volumes through the " \
            "Docker API (VOLKEEPER_VOLUME_ACCESS=docker-api)"
    if data is None:
        return "its driver or mount options keep its data off a host path this worker " \
            "knows (a snapshot needs a local volume, or a local bind volume)"
    if not data.is_dir():
        return f"its data at {data} is not visible to this worker (run it on the host)"
    return ""


# --- taking and dropping ---------------------------------------------------------------

def run(cmd: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one snapshot command; SnapshotFailed naming it and its error output."""
    try:
        p = subprocess.run(list(cmd), capture_output=True, text=True,
                           timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SnapshotFailed(f"snapshot command {' '.join(cmd)!r} could not run: {e}",
                             "check that the tool is installed and the worker runs as "
                             "root on the host") from None
    if check and p.returncode != 0:
        raise SnapshotFailed(
            f"snapshot command {' '.join(cmd)!r} failed (exit {p.returncode}): "
            f"{(p.stderr or p.stdout).strip()[-500:]}",
            "see the worker's permissions and the filesystem's free space")
    return p


def take(plan: Plan) -> None:
    """Make the plan's directories and run its create commands."""
    for d in plan.dirs:
        Path(d).mkdir(parents=True, exist_ok=True)
    for cmd in plan.create:
        run(cmd)


def drop_recorded(record: Mapping[str, Any]) -> bool:
    """Drop a snapshot (``Plan.record``): every drop command runs, a missing snapshot is
    not an error; then its empty directories go. Returns whether it existed; raises
    SnapshotFailed when one that exists could not be dropped."""
    existed = False
    errors: list[str] = []
    for cmd in record.get("drop") or []:
        if not _exists(str(record.get("kind")), str(record.get("handle")), cmd):
            continue
        existed = True
        p = run(cmd, check=False)
        if p.returncode != 0:
            errors.append(f"{' '.join(cmd)}: {(p.stderr or p.stdout).strip()[-300:]}")
    for d in record.get("dirs") or []:
        with contextlib.suppress(OSError):  # not empty (another snapshot), or gone
            os.rmdir(d)
    if errors:
        raise SnapshotFailed(f"could not drop {record.get('kind')} snapshot "
                             f"{record.get('handle')}: {'; '.join(errors)}",
                             "drop it by hand with the command named")
    return existed


def _exists(kind: str, handle: str, cmd: Sequence[str]) -> bool:
    """Whether the thing ``cmd`` drops is still there (so a repeated drop is a no-op)."""
    if kind == "btrfs":
        return Path(handle).exists()
    if cmd and cmd[0] == "umount":
        return os.path.ismount(cmd[-1])
    probe = ["zfs", "list", "-t", "snapshot", handle] if kind == "zfs" else ["lvs", handle]
    try:
        return run(probe, check=False).returncode == 0
    except SnapshotFailed:
        return False
