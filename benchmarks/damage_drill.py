"""Damage drill: single-byte flips and truncations at random places in stored backups.

Usage::

    python benchmarks/damage_drill.py [--seed 1] [--flips 100] [--truncations 20] \
        [--workdir /var/tmp/vkdrill]

Each trial makes a fresh backup of one generated tree (a few dozen files, some larger
than a repository chunk) on a ``LocalBackend`` directory — alternately a native
repository (``repo``) and a portable archive (``tar``, ``tar.gz``, ``tar.zst``, in turn) —,
picks a random stored object of a random kind (repository: a data pack, a pack carrying
trees, an index file, the snapshot; archive: the archive object, its manifest) and damages
it once: one byte XORed with a random non-zero value at a random offset, or the object cut
at a random length. Then:

- *verify*: ``common.engine.verify.verify_backup`` as the verify job runs it (repository:
  ``read_data=True``, i.e. ``verify --read-data``; archives: the whole archive, always).
  ``found``: the outcome is not ok. ``named``: the damaged object's storage key is among
  its ``damaged_objects``. ``file named`` (only where the damage lies in file data — a
  flip inside a data blob, or a truncated data pack): a file that needs the damaged data
  is named in its problems.
- *restore*: the library restore below Docker — repository: ``restore_snapshot`` into an
  empty directory; archive: ``extract_archive`` with the catalog's sha256 and the restore
  policy into ``tar --extract`` (what ``extract_into`` does with a volume). ``refused``:
  it raised. ``intact``: it succeeded and the restored tree equals the source byte for byte
  (legitimate only when the damaged object is not read by a restore — a manifest).
  ``CORRUPT``: it succeeded with different bytes — a product defect; ``crashed``: it
  raised something else than the product's errors (a traceback for the user).

The script prints one line per trial, a table and a markdown block for docs/reliability.md;
it exits 1 if any damage went unfound or unnamed, or a restore ended ``CORRUPT``.
``run_drill`` is what ``tests/unit/engine/test_damage_drill.py`` runs on a smaller scale.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from common.archive import EXTENSIONS, ManifestWriter, extract_archive, gnutar, write_archive
from common.archive.manifest import manifest_key
from common.config import Settings
from common.engine.formats.archive import restore_policy
from common.engine.records import StoredBackup
from common.engine.verify import verify_backup
from common.errors import VolkeeperError
from common.progress import NullTracker
from common.repository import ids
from common.repository.backup.archiver import backup_directory, iter_nodes
from common.repository.core.chunker import ChunkerParams
from common.repository.core.ids import BlobType
from common.repository.core.index import IndexEntry
from common.repository.core.keys import KdfParams
from common.repository.core.repository import init_repository, open_repository
from common.repository.core.snapshot import load_snapshot
from common.repository.restore.restorer import restore_snapshot
from common.storage.local import LocalBackend

PASSPHRASE = "damage drill passphrase"
FAST = KdfParams(n=2**10, r=8, p=1)
SMALL = ChunkerParams(16 * 1024, 64 * 1024, 256 * 1024)
PACK_SIZE = 256 * 1024
ARCHIVE_FORMATS = ("tar", "tar.gz", "tar.zst")


@dataclass
class Trial:
    """One damaged backup and what verify and restore made of it."""

    n: int
    fmt: str
    kind: str
    key: str
    damage: str
    size: int
    found: bool = False
    named: bool = False
    file_named: bool | None = None  # None: the damage is not in file data
    restore: str = ""  # refused | intact | CORRUPT | crashed
    detail: str = ""

    @property
    def ok(self) -> bool:
        return (self.found and self.named and self.file_named is not False
                and self.restore in ("refused", "intact"))

    def line(self) -> str:
        fname = "-" if self.file_named is None else "yes" if self.file_named else "NO"
        return (f"{self.n:4d} {self.fmt:8s} {self.kind:10s} {self.damage:18s} "
                f"found={'yes' if self.found else 'NO':3s} named={'yes' if self.named else 'NO':3s}"
                f" file={fname:3s} restore={self.restore:8s} {self.key}")


@dataclass
class Results:
    trials: list[Trial] = field(default_factory=list)

    def count(self, damage: str | None = None) -> dict[str, int]:
        ts = [t for t in self.trials if damage is None or t.damage.startswith(damage)]
        return {
            "trials": len(ts),
            "found": sum(t.found for t in ts),
            "named": sum(t.named for t in ts),
            "file_cases": sum(t.file_named is not None for t in ts),
            "file_named": sum(bool(t.file_named) for t in ts),
            "refused": sum(t.restore == "refused" for t in ts),
            "intact": sum(t.restore == "intact" for t in ts),
            "corrupt": sum(t.restore == "CORRUPT" for t in ts),
            "crashed": sum(t.restore == "crashed" for t in ts),
        }

    @property
    def failures(self) -> list[Trial]:
        return [t for t in self.trials if not t.ok]


# -- the source tree ------------------------------------------------------------------------

def make_tree(root: Path, seed: int) -> None:
    """A few dozen files: small ones in nested directories, some larger than a chunk
    (random and compressible), an empty file and a symlink."""
    rnd = random.Random(seed)
    root.mkdir(parents=True)
    for i in range(3):
        (root / f"big{i}.bin").write_bytes(rnd.randbytes(rnd.randint(300_000, 700_000)))
    (root / "log.txt").write_bytes(b"".join(b"line %d of the log\n" % i for i in range(30000)))
    for d in range(3):
        sub = root / f"dir{d}" / "nested"
        sub.mkdir(parents=True)
        for i in range(12):
            (sub / f"small{i}.txt").write_bytes(rnd.randbytes(rnd.randint(1, 4000)))
    (root / "empty").write_bytes(b"")
    os.symlink("log.txt", root / "link")


def snapshot_of(root: Path) -> dict[str, str]:
    """Relative path → type and content digest of every entry below ``root``."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# -- damage -----------------------------------------------------------------------------------

def damage(path: Path, rnd: random.Random, truncate: bool) -> tuple[str, int]:
    """Flip one byte of (or truncate) the file; returns a description and the offset."""
    data = bytearray(path.read_bytes())
    if truncate:
        at = rnd.randrange(len(data))
        path.write_bytes(bytes(data[:at]))
        return f"truncate@{at}", at
    at = rnd.randrange(len(data))
    data[at] ^= rnd.randrange(1, 256)
    path.write_bytes(bytes(data))
    return f"flip@{at}", at


def _settings(home: Path) -> Settings:
    return Settings(home=home, repository_password=SecretStr(PASSPHRASE),
                    repository_kdf_n=2**10)


# -- repository trials ----------------------------------------------------------------------

def repo_trial(n: int, src: Path, expected: dict[str, str], work: Path, rnd: random.Random,
               truncate: bool) -> Trial:
    backend = LocalBackend(work / "repo")
    repo = init_repository(backend, PASSPHRASE, kdf=FAST, chunker=SMALL, pack_size=PACK_SIZE)
    snap = backup_directory(repo, src, host="h", volume="v")
    index = repo.load_index().index
    users: dict[bytes, list[str]] = {}
    for rel, node in iter_nodes(repo, snap.tree):
        for blob in node.content:
            users.setdefault(blob, []).append(rel)
    by_pack: dict[bytes, list[IndexEntry]] = {}
    for entry in index:
        by_pack.setdefault(entry.pack_id, []).append(entry)
    kinds: dict[str, list[str]] = {"data pack": [], "tree pack": [],
                                   "index": [o.key for o in backend.list(ids.INDEX_PREFIX)],
                                   "snapshot": [ids.snapshot_key(snap.id)]}
    for pack_id, entries in by_pack.items():
        trees = any(e.blob_type == BlobType.TREE for e in entries)
        kinds["tree pack" if trees else "data pack"].append(ids.pack_key(pack_id))
    kind = rnd.choice(sorted(k for k, v in kinds.items() if v))
    key = rnd.choice(sorted(kinds[kind]))
    path = backend._path(key)
    size = path.stat().st_size
    what, at = damage(path, rnd, truncate)
    trial = Trial(n, "repo", kind, key, what, size)

    # which files need the damaged bytes (only for damage in file data)
    affected: list[str] = []
    if key.startswith(ids.PACKS_PREFIX):
        entries = by_pack[ids.id_from_key(key)]
        for e in entries:  # a truncated pack has lost its header: all of it is unreadable
            hit = truncate or e.offset <= at < e.offset + e.length
            if hit and e.blob_type != BlobType.TREE:
                affected += users.get(e.blob_id, [])
    backup = StoredBackup(id=f"b{n}", key=ids.snapshot_key(snap.id), manifest_key="",
                          format="repo", checksum="", logical_bytes=snap.stats.bytes,
                          file_count=snap.stats.files, volume="v", host="h",
                          snapshot_id=snap.id.hex())
    settings = _settings(work)
    outcome = verify_backup(backend, backup, NullTracker(), settings, read_data=True)
    text = "\n".join(outcome.problems)
    trial.found = not outcome.ok
    trial.named = key in outcome.damaged_objects
    if affected:
        trial.file_named = any(f"/{rel}" in text or rel in text for rel in affected)
    trial.detail = text[:300]

    dest = work / "restored"
    try:
        reopened = open_repository(LocalBackend(work / "repo"), PASSPHRASE)
        restore_snapshot(reopened, load_snapshot(reopened, snap.id), dest, processes=0)
    except VolkeeperError as e:  # an error saying what is damaged: the restore refused
        trial.restore = "refused"
        trial.detail += f" | restore: {type(e).__name__}: {str(e)[:200]}"
    except Exception as e:  # noqa: BLE001 - not silent, but a traceback for the user
        trial.restore = "crashed"
        trial.detail += f" | restore crashed: {type(e).__name__}: {str(e)[:200]}"
    else:
        trial.restore = "intact" if snapshot_of(dest) == expected else "CORRUPT"
    return trial


# -- archive trials -------------------------------------------------------------------------

def archive_trial(n: int, fmt: str, src: Path, expected: dict[str, str], work: Path,
                  rnd: random.Random, truncate: bool) -> Trial:
    backend = LocalBackend(work / "target")
    key = f"volkeeper/archives/h/v/20260101T000000Z-b{n}" + EXTENSIONS[fmt]  # type: ignore[index]
    sink = io.StringIO()
    manifest = ManifestWriter(sink, {"volume": "v", "format": fmt, "archive_key": key})
    with backend.open_writer(key) as writer, gnutar.create_stream(src) as stream:
        stats = write_archive(stream, writer, fmt, NullTracker(),  # type: ignore[arg-type]
                              manifest=manifest)
        writer.commit()
    mkey = manifest_key(key)
    backend.put_bytes(mkey, sink.getvalue().encode())
    backup = StoredBackup(id=f"b{n}", key=key, manifest_key=mkey, format=fmt,
                          checksum=stats.archive_sha256, logical_bytes=stats.file_bytes,
                          file_count=stats.files, volume="v", host="h")
    kind = rnd.choice(["archive", "manifest"])
    target = key if kind == "archive" else mkey
    path = backend._path(target)
    size = path.stat().st_size
    what, _ = damage(path, rnd, truncate)
    trial = Trial(n, fmt, kind, target, what, size)
    settings = _settings(work)
    outcome = verify_backup(backend, backup, NullTracker(), settings)
    trial.found = not outcome.ok
    trial.named = target in outcome.damaged_objects
    trial.detail = "\n".join(outcome.problems)[:300]

    dest = work / "restored"
    dest.mkdir()
    try:
        with backend.open_reader(key) as reader, gnutar.extract_stream(dest) as tar_in:
            extract_archive(reader, fmt, tar_in, NullTracker(),  # type: ignore[arg-type]
                            expected_sha256=backup.checksum, name=key,
                            policy=restore_policy(backup, settings))
    except VolkeeperError as e:
        trial.restore = "refused"
        trial.detail += f" | restore: {type(e).__name__}: {str(e)[:200]}"
    except Exception as e:  # noqa: BLE001 - not silent, but a traceback for the user
        trial.restore = "crashed"
        trial.detail += f" | restore crashed: {type(e).__name__}: {str(e)[:200]}"
    else:
        trial.restore = "intact" if snapshot_of(dest) == expected else "CORRUPT"
    return trial


# -- the drill ------------------------------------------------------------------------------

def run_drill(seed: int, flips: int, truncations: int, workdir: Path,
              echo: bool = False) -> Results:
    """Run ``flips + truncations`` trials, alternating repository and archive backups."""
    rnd = random.Random(seed)
    src = workdir / "source"
    if src.exists():
        shutil.rmtree(src)
    make_tree(src, seed)
    expected = snapshot_of(src)
    plan = [False] * flips + [True] * truncations
    results = Results()
    for n, truncate in enumerate(plan):
        work = Path(tempfile.mkdtemp(prefix=f"trial{n}-", dir=workdir))
        try:
            if n % 2 == 0:
                t = repo_trial(n, src, expected, work, rnd, truncate)
            else:
                fmt = ARCHIVE_FORMATS[(n // 2) % len(ARCHIVE_FORMATS)]
                t = archive_trial(n, fmt, src, expected, work, rnd, truncate)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results.trials.append(t)
        if echo:
            print(t.line(), flush=True)
            if not t.ok:
                print("      ", t.detail.replace("\n", " / "), flush=True)
    return results


def table(results: Results) -> str:
    rows = [("flips", results.count("flip")), ("truncations", results.count("truncate")),
            ("all", results.count())]
    head = ("| damage | trials | found by verify | object named | file named | "
            "restore refused | restore intact | restore CORRUPT | restore crashed |")
    lines = [head, "|" + " --- |" * 9]
    for name, c in rows:
        lines.append(f"| {name} | {c['trials']} | {c['found']} | {c['named']} | "
                     f"{c['file_named']}/{c['file_cases']} | {c['refused']} | {c['intact']} "
                     f"| {c['corrupt']} | {c['crashed']} |")
    by_kind = Counter((t.fmt if t.fmt == "repo" else "archive", t.kind) for t in results.trials)
    lines.append("")
    lines.append("Objects damaged: " + ", ".join(
        f"{f} {k} {n}" for (f, k), n in sorted(by_kind.items())) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flips", type=int, default=100)
    ap.add_argument("--truncations", type=int, default=20)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vkdrill-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = run_drill(args.seed, args.flips, args.truncations, workdir, echo=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"```\npython benchmarks/damage_drill.py --seed {args.seed} --flips {args.flips} "
          f"--truncations {args.truncations}\n```\n")
    print(table(results))
    for t in results.failures:
        print(f"\nFAILED trial {t.n}: {t.line()}\n  {t.detail}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
