"""A repository backup killed with SIGKILL, again and again, at random instants and at the
exact points of its write ordering (issue 3, "Bad input and faults").

Each attempt is a real process (``tests/integration/repository/repo_backup_child.py``: open the
repository, take the newest snapshot of the volume as parent, back the directory up),
killed after a seeded random delay that ranges over the whole backup, its end included.
After every kill: each snapshot in the repository loads, each new one restores byte for
byte and metadata for metadata as the source was when it was taken, a check with
``read_data`` finds nothing, and no blob was ever stored twice (what a killed attempt had
indexed is reused, not uploaded again). Finally a backup runs to its end, stores only what
was not indexed yet, and restores identically.

The seed is printed; set ``VOLKEEPER_TEST_KILL_SEED`` to replay a run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from common.repository import ids, open_repository
from common.repository.backup.archiver import iter_nodes
from common.repository.backup.workers import ProcessReaders
from common.repository.check.checker import check_repository
from common.repository.core.chunker import ChunkerParams
from common.repository.core.index import decode_index
from common.repository.core.keys import KdfParams
from common.repository.core.repository import Repository, init_repository
from common.repository.core.snapshot import Snapshot, load_snapshot, snapshot_ids
from common.repository.restore.restorer import restore_snapshot
from common.storage.base import Backend
from tests.integration.embedded.test_embedded import cli, volume
from tests.integration.repository.repo_backup_child import KILL_POINTS, backend_for
from tests.treecmp import build_fidelity_tree, compare_trees
from tests.unit.archive.test_helpers import xattr_capable_dir

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CHILD = "tests.integration.repository.repo_backup_child"  # run with python -m
MARK = "VOLKEEPER_TEST_KILL_BENCH"  # in the environment of a bench's processes: ours to count
PASSPHRASE = "kill -9 horse battery"
# small chunks and 1 MiB packs: a step of new data makes dozens of packs and index files,
# so a kill lands between many commits
CHUNKS = ChunkerParams(64 * 1024, 256 * 1024, 1024 * 1024)
PACK_SIZE = 1 << 20
STEP_MIB = 24  # new data per attempt: a ~1-2 s backup on a busy 2-core machine


def kill_seed() -> int:
    seed = int(os.environ.get("VOLKEEPER_TEST_KILL_SEED") or random.randrange(1 << 32))
    print(f"kill seed: {seed} (replay with VOLKEEPER_TEST_KILL_SEED={seed})")
    return seed


@dataclass
class Attempt:
    """One backup process: how long it ran and what it reported (None when killed)."""

    killed: bool
    seconds: float
    result: dict[str, Any] | None
    log: str


@dataclass
class KillBench:
    """A source directory that grows by one step of fresh data per attempt, a repository,
    and everything the invariants need to remember between attempts."""

    tmp: Path
    target: dict[str, Any]
    backend: Backend
    rnd: random.Random
    step_mib: int = STEP_MIB
    fidelity: bool = True
    src: Path = field(init=False)
    steps: int = 0
    verified: set[bytes] = field(default_factory=set)
    kills: int = 0
    completed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # more arguments for the child

    def __post_init__(self) -> None:
        self.src = xattr_capable_dir(self.tmp) / "volume"
        if self.fidelity:  # unchanged: re-used unread by each backup
            build_fidelity_tree(self.src / "static")
        else:
            self.src.mkdir(parents=True)

    @property
    def repo(self) -> Repository:
        return open_repository(self.backend, PASSPHRASE)

    def add_step(self, mib: int | None = None) -> None:
        """Fresh data the next attempt must store; the oldest step beyond two is removed so
        the source (and each restore) stays small while the repository keeps growing."""
        n, rnd, mib = self.steps, self.rnd, mib or self.step_mib
        step = self.src / f"step{n:03d}"
        step.mkdir()
        (step / "random.bin").write_bytes(rnd.randbytes((mib // 2) << 20))
        text = rnd.randbytes((mib // 2) << 19).hex().encode()  # compresses ~2:1
        (step / "text.log").write_bytes(b"\n".join(
            text[i:i + 63] for i in range(0, len(text), 63)))
        for k in range(200):
            sub = step / f"d{k % 8}"
            sub.mkdir(exist_ok=True)
            (sub / f"f{k}").write_bytes(rnd.randbytes(rnd.randrange(6000)))
        old = self.src / f"step{n - 2:03d}"
        if old.exists():
            shutil.rmtree(old)
        self.steps += 1

    def run(self, *, kill_after: float | None = None, kill_at: str | None = None) -> Attempt:
        """Run one backup process; SIGKILL it ``kill_after`` seconds after its start."""
        args = {"target": self.target, "passphrase": PASSPHRASE, "source": str(self.src),
                "host": "host-k", "volume": "vol", "index_every": 2, "kill_at": kill_at,
                **self.options}
        log = self.tmp / "child.log"
        began = time.monotonic()
        with open(log, "w") as out:
            p = subprocess.Popen(
                [sys.executable, "-m", CHILD, json.dumps(args)], cwd=REPO,
                env=os.environ | {MARK: str(self.tmp)}, stdout=out, stderr=subprocess.STDOUT)
            try:
                p.wait(kill_after)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait(30)
        seconds = time.monotonic() - began
        text = log.read_text(errors="replace")
        killed = p.returncode == -signal.SIGKILL
        assert killed or p.returncode == 0, f"backup process failed:\n{text[-3000:]}"
        result = json.loads(text.splitlines()[-1]) if not killed else None
        self.kills += killed
        self.completed += not killed
        return Attempt(killed, seconds, result, text)

    def index_entries(self) -> Counter[bytes]:
        """How often each blob id is listed across all index files."""
        repo, counts = self.repo, Counter[bytes]()
        for info in self.backend.list(ids.INDEX_PREFIX):
            index_id = ids.id_from_key(info.key)
            for e in decode_index(repo.cipher, index_id, self.backend.get_bytes(info.key)).entries:
                counts[e.blob_id] += 1
        return counts

    def assert_intact(self, what: str) -> None:
        """The invariants that must hold after any kill (see the module docstring)."""
        repo = self.repo
        snaps = [load_snapshot(repo, sid) for sid in snapshot_ids(repo)]  # every one loads
        for snap in snaps:
            if snap.id not in self.verified:
                self.restore_and_compare(repo, snap, what)
                self.verified.add(snap.id)
        report = check_repository(repo, read_data=True)
        assert report.ok, f"{what}: {[p.to_dict() for p in report.problems]}"
        twice = [b.hex() for b, n in self.index_entries().items() if n > 1]
        assert not twice, f"{what}: blobs stored twice: {twice[:5]}"

    def restore_and_compare(self, repo: Repository, snap: Snapshot, what: str) -> None:
        """A new snapshot is only ever made of the source as it is now (the source changes
        only between attempts), so it must restore to exactly that."""
        dest = self.src.parent / f"restored-{snap.id.hex()[:12]}"
        restore_snapshot(repo, snap, dest)
        diffs = compare_trees(self.src, dest)
        shutil.rmtree(dest)
        assert diffs == [], f"{what}: snapshot {snap.id.hex()} restores differently: {diffs[:10]}"

    def needed_blobs(self, snap: Snapshot) -> set[bytes]:
        """Every data and tree blob the snapshot references."""
        repo = self.repo
        repo.load_index()
        out = {snap.tree}
        for _, node in iter_nodes(repo, snap.tree):
            out.update(node.content)
            if node.subtree is not None:
                out.add(node.subtree)
        return out


def new_bench(tmp: Path, target: dict[str, Any], seed: int, *, step_mib: int = STEP_MIB,
              pack_size: int = PACK_SIZE, fidelity: bool = True) -> KillBench:
    backend = backend_for(target)
    init_repository(backend, PASSPHRASE, kdf=KdfParams(n=2**10), chunker=CHUNKS,
                    pack_size=pack_size)
    return KillBench(tmp, target, backend, random.Random(seed), step_mib, fidelity)


def kill_repeatedly(bench: KillBench, attempts: int) -> None:
    """Random kills over the whole backup: delays range up to the duration of the last
    uninterrupted attempt, and a third of them fall into its last 40%, where the last
    packs, the final index and the snapshot are written. A kill that comes too late meets
    a finished backup, whose snapshot must then restore."""
    bench.add_step()
    assert bench.run().result is not None  # the first backup also stores the static part
    bench.assert_intact("the first backup")
    bench.add_step()
    full = bench.run()
    assert full.result is not None
    typical = full.seconds
    bench.assert_intact("the second backup")
    for i in range(attempts):
        bench.add_step()
        late = bench.rnd.random() < 1 / 3
        delay = typical * (bench.rnd.uniform(0.6, 1.0) if late else bench.rnd.uniform(0.03, 0.8))
        attempt = bench.run(kill_after=delay)
        print(f"attempt {i}: SIGKILL after {delay:.2f}s of a {typical:.2f}s backup: "
              f"{'killed' if attempt.killed else f'completed in {attempt.seconds:.2f}s'}")
        if not attempt.killed:
            typical = attempt.seconds
        bench.assert_intact(f"attempt {i}, SIGKILL after {delay:.2f}s "
                            f"({'killed' if attempt.killed else 'completed'})")
    assert bench.kills >= attempts // 2, f"only {bench.kills} of {attempts} attempts were killed"


def final_backup_reuses_a_killed_backups_upload(bench: KillBench) -> None:
    """Kill a backup once its first index file is written (so it uploaded and indexed
    something), then back up to the end: it stores exactly the blobs not indexed yet, which
    is less than a backup starting from nothing would have stored."""
    bench.add_step(bench.step_mib * 2)
    indexed_before = set(bench.index_entries())
    index_files = {o.key for o in bench.backend.list(ids.INDEX_PREFIX)}
    args = {"target": bench.target, "passphrase": PASSPHRASE, "source": str(bench.src),
            "host": "host-k", "volume": "vol", "index_every": 2}
    p = subprocess.Popen(
        [sys.executable, "-m", CHILD, json.dumps(args)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:
        if {o.key for o in bench.backend.list(ids.INDEX_PREFIX)} - index_files:
            break
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    assert p.returncode == -signal.SIGKILL, "the backup ended before it could be killed"
    bench.assert_intact("killed after its first index file")
    indexed_by_killed = set(bench.index_entries()) - indexed_before
    assert indexed_by_killed

    final = bench.run()
    assert final.result is not None
    bench.assert_intact("the final backup")
    snap = load_snapshot(bench.repo, bytes.fromhex(final.result["snapshot"]))
    needed = bench.needed_blobs(snap)
    reused = needed & indexed_by_killed
    assert reused, "the final backup re-used nothing the killed one had uploaded"
    stored = snap.stats.new_blobs
    assert stored == len(needed - indexed_before - indexed_by_killed)
    assert stored < len(needed - indexed_before)  # less than from nothing


def test_a_backup_killed_at_each_point_of_its_write_ordering_leaves_no_damage(
        tmp_path: Path) -> None:
    bench = new_bench(tmp_path, {"local": str(tmp_path / "repo")}, seed=1)
    for kill_at in KILL_POINTS:
        bench.add_step(8)
        before = set(snapshot_ids(bench.repo))
        attempt = bench.run(kill_at=kill_at)
        assert attempt.killed
        appeared = set(snapshot_ids(bench.repo)) - before
        assert len(appeared) == (1 if kill_at == "after-snapshot" else 0), kill_at
        bench.assert_intact(f"killed at {kill_at}")
        again = bench.run()
        assert again.result is not None
        if kill_at != "walk-done":
            # every data blob was indexed: the next backup stores at most trees again
            assert again.result["stats"]["new_bytes"] < 64 * 1024, (kill_at, again.result)
        bench.assert_intact(f"the backup after a kill at {kill_at}")


def test_a_backup_killed_at_random_instants_again_and_again_leaves_no_damage(
        tmp_path: Path) -> None:
    bench = new_bench(tmp_path, {"local": str(tmp_path / "repo")}, kill_seed())
    kill_repeatedly(bench, attempts=16)
    final_backup_reuses_a_killed_backups_upload(bench)


def _backup_workers_alive(bench: KillBench) -> list[int]:
    """Backup worker processes of this bench's backups (their environment carries its mark:
    another test session on this machine may be running backup workers of its own)."""
    mark = f"{MARK}={bench.tmp}".encode() + b"\0"
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if ProcessReaders.MODULE.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if mark in f.read() + b"\0":
                    out.append(int(pid))
        except (OSError, ValueError):
            continue
    return out


def test_a_backup_in_worker_processes_killed_at_random_instants_leaves_no_damage(
        tmp_path: Path) -> None:
    """The small files of every attempt go to a backup worker process from the first one
    on; SIGKILL of the backing-up process at random instants must leave the same intact
    repository, and its worker must end on its own (its pipe closes)."""
    bench = new_bench(tmp_path, {"local": str(tmp_path / "repo")}, kill_seed())
    bench.options = {"processes": 1, "process_after": 0}
    kill_repeatedly(bench, attempts=6)
    for _ in range(100):
        if not _backup_workers_alive(bench):
            break
        time.sleep(0.1)
    assert _backup_workers_alive(bench) == []


def test_a_backup_to_s3_killed_at_random_instants_leaves_no_damage(
        tmp_path: Path, s3_server: Any, s3_bucket: str) -> None:
    target = {"s3": s3_server.backend_kwargs(s3_bucket) | {"prefix": "repo"}}
    # moto answers ~50 requests/s here: fewer, bigger packs and less data than on disk
    bench = new_bench(tmp_path, target, kill_seed(), step_mib=6, pack_size=4 << 20,
                      fidelity=False)
    kill_repeatedly(bench, attempts=4)
    final_backup_reuses_a_killed_backups_upload(bench)


def test_the_volkeeper_backup_command_killed_mid_repo_backup_leaves_a_usable_repository(
        tmp_path: Path, docker_host_a: Any, embedded_env: dict[str, str]) -> None:
    """The real product path: ``volkeeper backup --format repo`` (embedded: CLI, SQLite
    catalog and the worker in one process) SIGKILLed while it writes packs. The repository
    stays intact, the killed job is failed (its process is gone) rather than holding the
    volume's lock, and the next backup succeeds and restores identically."""
    env = embedded_env | {"VOLKEEPER_REPOSITORY_PASSWORD": PASSPHRASE,
                          "VOLKEEPER_REPOSITORY_KDF_N": "16384"}
    src = volume(docker_host_a, "killed-repo")
    rnd = random.Random(kill_seed())
    target = Path(env["VOLKEEPER_HOME"]) / "backups"
    packs = target / "volkeeper" / "repo" / "packs"
    cmd = [sys.executable, "-m", "cli.main", "backup", "killed-repo", "--format", "repo"]
    mid_job = 0  # kills that landed while the job still ran (its row was left running)
    for i in range(8):
        if i >= 3 and mid_job:
            break
        (src / f"data{i}.bin").write_bytes(rnd.randbytes(96 << 20))  # several packs to go
        before = set(packs.glob("*/*"))
        p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60  # kill once it has committed a new pack
        while p.poll() is None and time.monotonic() < deadline \
                and not set(packs.glob("*/*")) - before:
            time.sleep(0.005)
        # a fast machine may finish the rest within 0.2 s: later attempts kill at once
        delay = rnd.uniform(0, 0.2) if i < 3 else 0.0
        time.sleep(delay)
        p.kill()
        err = p.communicate(timeout=30)[1].decode(errors="replace")
        print(f"attempt {i}: SIGKILL {delay:.2f}s after its first new pack: exit {p.returncode}")
        assert p.returncode in (0, -signal.SIGKILL), err
        repo = open_repository(backend_for({"local": str(target)}), PASSPHRASE)
        for sid in snapshot_ids(repo):
            load_snapshot(repo, sid)
        report = check_repository(repo, read_data=True)
        assert report.ok, [x.to_dict() for x in report.problems]
        last = json.loads(cli(env, "jobs", "--json").stdout)[0]  # newest first
        mid_job += last["state"] == "failed"
    assert mid_job, "no kill landed while a backup ran: the volume is too small for this host"

    done = cli(env, "backup", "killed-repo", "--format", "repo", "--json")
    job = json.loads(done.stdout)
    assert job["state"] == "succeeded", job
    history = json.loads(cli(env, "jobs", "--json").stdout)
    killed = [j for j in history if j["id"] != job["id"]]
    assert all(j["state"] in ("failed", "succeeded") for j in killed), killed
    assert any("no longer exists" in (j["error"] or "") for j in killed), killed
    cli(env, "restore", job["backup_id"], "--into", "killed-repo-copy", "--json")
    dst = Path(docker_host_a.client().volumes.get("killed-repo-copy").attrs["Mountpoint"])
    assert compare_trees(src, dst) == []
