"""Backups from a btrfs snapshot instead of a stop, as a user runs them (embedded `volkeeper
backup --snapshot`): a `local` bind volume on a subvolume of a loop-mounted btrfs, a
container appending records to two files all the while. The backup is one instant of the
volume (every record complete, the two files at most one record apart), the container
never stopped, and the snapshot is gone afterwards — after a success, a failure, a cancel
and a killed CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dockerd import busybox_image
from tests.fixtures.util import is_root, require_binary, unavailable
from tests.integration.embedded.test_consistent import backup, backups_of, state
from tests.integration.embedded.test_embedded import REPO, cli

pytestmark = pytest.mark.integration

PAD = "r" * 100
#: appends record N to a, then to b, for ever, each committed (fsync) before the next —
#: as a database commits: a committed record is in every later snapshot
WRITER = (f"i=0; trap 'exit 0' TERM; while :; do i=$((i+1)); echo \"$i {PAD}\" >> /data/a; "
          f"sync /data/a; echo \"$i {PAD}\" >> /data/b; sync /data/b; done")


@pytest.fixture(scope="module")
def btrfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 300 MB btrfs file system, loop-mounted (unmounted afterwards)."""
    mkfs = require_binary("mkfs.btrfs")
    require_binary("btrfs")
    if not is_root():
        unavailable("mounting a btrfs needs root")
    root = tmp_path_factory.mktemp("btrfs")
    image, mnt = root / "fs.img", root / "mnt"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(300 << 20)
    subprocess.run([mkfs, "-q", str(image)], check=True, capture_output=True)
    p = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True,
                       text=True)
    if p.returncode != 0:
        unavailable(f"cannot loop-mount a btrfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def subvolume_volume(docker_host: Any, btrfs: Path) -> tuple[str, Path]:
    """A `local` bind volume whose data is a new btrfs subvolume."""
    name = f"snap-{uuid.uuid4().hex[:8]}"
    sub = btrfs / name
    subprocess.run(["btrfs", "subvolume", "create", str(sub)], check=True,
                   capture_output=True)
    docker_host.client().volumes.create(name, driver="local", driver_opts={
        "type": "none", "o": "bind", "device": str(sub)})
    return name, sub


def snapshots_left(btrfs: Path) -> list[str]:
    out = subprocess.run(["btrfs", "subvolume", "list", str(btrfs)], check=True,
                         capture_output=True, text=True).stdout
    return [line.split(" path ", 1)[1] for line in out.splitlines()
            if ".volkeeper-snapshots" in line]


@pytest.fixture
def writer(docker_host_a: Any) -> Iterator[Any]:
    made: list[Any] = []

    def start(volume: str) -> Any:
        ctr = docker_host_a.client().containers.run(
            busybox_image(docker_host_a), ["sh", "-c", WRITER], detach=True,
            network_mode="none", name=f"{volume}-writer",
            labels={"volkeeper.stop-during-backup": "true"},  # a snapshot replaces it
            volumes={volume: {"bind": "/data", "mode": "rw"}})
        made.append(ctr)
        return ctr

    yield start
    for ctr in made:
        ctr.remove(force=True)


def records(data: bytes) -> list[int]:
    """The record numbers of a file; every line must be one complete record. An append
    not yet committed at the instant may read as zeros (as after a power cut: btrfs
    snapshots are crash-consistent); that tail is at most the one record in flight."""
    kept = data.rstrip(b"\0")
    assert len(data) - len(kept) <= len(PAD) + 12, "more than one record lost"
    lines = kept.split(b"\n")
    assert lines[-1] == b"", "the file ends inside a record"
    out = []
    for line in lines[:-1]:
        n, _, pad = line.partition(b" ")
        assert pad == PAD.encode(), f"a torn record: {line[:40]!r}"
        out.append(int(n))
    return out


def restored_volume(docker_host: Any, env: dict[str, str], backup_id: str) -> Path:
    into = f"back-{uuid.uuid4().hex[:8]}"
    done = json.loads(cli(env, "restore", backup_id, "--into", into, "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    return Path(docker_host.client().volumes.get(into).attrs["Mountpoint"])


def test_a_btrfs_snapshot_backup_is_one_instant_of_a_volume_being_written(
        embedded_env: dict[str, str], docker_host_a: Any, btrfs: Path, writer: Any) -> None:
    name, sub = subvolume_volume(docker_host_a, btrfs)
    ctr = writer(name)
    while not (sub / "b").exists() or (sub / "b").stat().st_size < 5_000:
        time.sleep(0.05)
    started = state(ctr)["StartedAt"]

    job = backup(embedded_env, name, "--snapshot", "btrfs")
    assert job["state"] == "succeeded", job["error"]
    r = job["result"]
    assert r["snapshot"]["kind"] == "btrfs" and r["snapshot"]["dropped"], r
    assert r["snapshot"]["handle"].startswith(f"{sub}/.volkeeper-snapshots/")
    assert r["stopped_containers"] == []  # the label's stop is replaced by the snapshot
    assert state(ctr)["Running"] and state(ctr)["StartedAt"] == started
    assert snapshots_left(btrfs) == [] and not (sub / ".volkeeper-snapshots").exists()

    back = restored_volume(docker_host_a, embedded_env, r["backup_id"])
    ctr.stop(timeout=5)
    a, b = records((back / "a").read_bytes()), records((back / "b").read_bytes())
    # one instant: b is written right after a, so at any instant a is b or one ahead
    assert a == list(range(1, len(a) + 1)) and b == list(range(1, len(b) + 1))
    assert len(b) <= len(a) <= len(b) + 1, (len(a), len(b))
    assert len(a) > 20
    # and that instant is the volume's: what was written afterwards only follows it
    assert (sub / "a").read_bytes().startswith((back / "a").read_bytes().rstrip(b"\0"))
    assert sorted(p.name for p in back.iterdir()) == ["a", "b"]  # no snapshot directory


def test_the_snapshot_is_dropped_after_a_failed_backup_and_explicit_btrfs_needs_btrfs(
        embedded_env: dict[str, str], docker_host_a: Any, btrfs: Path, tmp_path: Path
        ) -> None:
    name, sub = subvolume_volume(docker_host_a, btrfs)
    (sub / "data.bin").write_bytes(b"x" * 100_000)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "volkeeper").write_text("a file where the target needs a directory")
    cli(embedded_env, "targets", "add", "broken", f"file://{broken}")
    job = backup(embedded_env, name, "--snapshot", "btrfs", "--target", "broken",
                 "--format", "tar", ok=False)
    assert job["state"] == "failed" and "target 'broken'" in job["error"], job["error"]
    assert job["result"]["snapshot"]["dropped"], job["result"]
    assert snapshots_left(btrfs) == [] and sorted(p.name for p in sub.iterdir()) == [
        "data.bin"]
    assert backups_of(embedded_env, name) == []

    # a plain volume (not on btrfs): explicit btrfs is refused, auto backs it up as is
    plain = f"plain-{uuid.uuid4().hex[:8]}"
    docker_host_a.client().volumes.create(plain)
    p = cli(embedded_env, "backup", plain, "--snapshot", "btrfs", "--json", ok=False)
    refused = json.loads(p.stdout)
    assert refused["state"] == "failed"
    assert "not btrfs" in refused["error"] and "--snapshot auto" in refused["error"]
    auto = backup(embedded_env, plain, "--snapshot", "auto", "--format", "tar")
    assert auto["state"] == "succeeded", auto["error"]
    assert "no filesystem snapshot" in auto["result"]["snapshot_note"]
    assert "snapshot" not in auto["result"]
    # the label asks for it too
    labelled = f"lab-{uuid.uuid4().hex[:8]}"
    docker_host_a.client().volumes.create(labelled, labels={"volkeeper.snapshot": "btrfs"})
    p = cli(embedded_env, "backup", labelled, "--json", ok=False)
    assert "not btrfs" in json.loads(p.stdout)["error"]


def start_slow_snapshot_backup(env: dict[str, str], btrfs: Path, name: str,
                               sub: Path) -> subprocess.Popen[str]:
    """A ~16 s snapshot backup of a 32 MiB volume, once its snapshot exists."""
    for i in range(4):
        (sub / f"blob{i}.bin").write_bytes(bytes([i]) * (8 << 20))
    cli(env, "jobs")  # the database exists before two processes use it
    slow = env | {"VOLKEEPER_BANDWIDTH_LIMIT": str(2 << 20)}
    p = subprocess.Popen([sys.executable, "-m", "cli.main", "backup", name, "--snapshot",
                          "btrfs", "--format", "tar", "--json"], env=slow, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while p.poll() is None and not snapshots_left(btrfs) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert p.poll() is None, "the backup ended before it could be stopped"
    return p


def test_a_cancelled_snapshot_backup_drops_its_snapshot(
        embedded_env: dict[str, str], docker_host_a: Any, btrfs: Path) -> None:
    name, sub = subvolume_volume(docker_host_a, btrfs)
    p = start_slow_snapshot_backup(embedded_env, btrfs, name, sub)
    try:
        job = next(j for j in json.loads(cli(embedded_env, "jobs", "--json").stdout)
                   if j["volume"] == name and j["state"] == "running")
        cli(embedded_env, "cancel", job["id"])
        stdout, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    done = json.loads(stdout)
    assert done["state"] == "cancelled", done
    assert done["result"]["snapshot"]["dropped"], done["result"]
    assert snapshots_left(btrfs) == [] and not (sub / ".volkeeper-snapshots").exists()
    assert backups_of(embedded_env, name) == []


def test_the_next_command_drops_the_snapshot_of_a_killed_backup(
        embedded_env: dict[str, str], docker_host_a: Any, btrfs: Path) -> None:
    name, sub = subvolume_volume(docker_host_a, btrfs)
    p = start_slow_snapshot_backup(embedded_env, btrfs, name, sub)
    p.kill()
    p.wait(30)
    assert len(snapshots_left(btrfs)) == 1  # nobody else drops it

    history = json.loads(cli(embedded_env, "jobs", "--json").stdout)
    job = next(j for j in history if j["kind"] == "backup" and j["volume"] == name)
    assert job["state"] == "failed"
    assert "snapshots" in job["error"] and "dropped" in job["error"], job["error"]
    assert snapshots_left(btrfs) == [] and not (sub / ".volkeeper-snapshots").exists()
    again = backup(embedded_env, name, "--snapshot", "btrfs", "--format", "tar")
    assert again["state"] == "succeeded", again["error"]  # the volume is not locked
