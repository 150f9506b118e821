"""Snapshot objects: the small sealed JSON naming one backup's root tree.

``volkeeper/repo/snapshots/<random id>`` holds ``seal(JSON, aad = "VKS" v1 || id)``:
host, volume, time, tags, pinned flag, root tree id, the root directory's own metadata,
parent snapshot id, stats and program version. A snapshot is written only after every
pack and index file it depends on is committed, so its existence means the backup is
complete. Tagging and pinning rewrite the object under the same id (an atomic replace).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.errors import IntegrityError, NotFound
from common.repository.core import ids
from common.repository.core.repository import Repository
from common.repository.core.tree import Node

SNAPSHOT_VERSION = 1
_AAD_KIND = b"VKS"
_HINT = ("check it with `volkeeper repair TARGET --read-data --dry-run`; a damaged snapshot "
         "can only be forgotten")


def program_version() -> str:
    """volkeeper's installed version (``unknown`` when not installed as a package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("volkeeper")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class SnapshotStats:
    """What a backup saw and stored."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    files_read: int = 0
    bytes_read: int = 0
    new_blobs: int = 0
    new_bytes: int = 0
    packs: int = 0
    index_files: int = 0
    skipped: int = 0


@dataclass
class Snapshot:
    """One backup of one volume."""

    tree: bytes
    root: Node
    host: str
    volume: str
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    tags: list[str] = field(default_factory=list)
    pinned: bool = False
    parent: bytes | None = None
    stats: SnapshotStats = field(default_factory=SnapshotStats)
    program_version: str = field(default_factory=program_version)
    #: the snapshot this one replaced (a repair's rewrite): lets a catalog that still
    #: names the old id find the new one
    original: bytes | None = None
    id: bytes = b""
    #: the exclude patterns the backup applied (written only when there are any)
    excludes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (without the id, which is the object's name)."""
        extra = {} if self.original is None else {"original": self.original.hex()}
        return extra | {
            "v": SNAPSHOT_VERSION,
            "tree": self.tree.hex(),
            "root": self.root.to_dict(),
            "host": self.host,
            "volume": self.volume,
            "time": self.time,
            "tags": sorted(set(self.tags)),
            "pinned": self.pinned,
            "parent": None if self.parent is None else self.parent.hex(),
            "stats": vars(self.stats),
            "program_version": self.program_version,
        } | ({"excludes": list(self.excludes)} if self.excludes else {})

    @classmethod
    def from_dict(cls, d: dict[str, Any], snapshot_id: bytes) -> Snapshot:
        """Parse the JSON form; IntegrityError when malformed."""
        try:
            if d["v"] != SNAPSHOT_VERSION:
                raise ValueError(f"snapshot format version {d['v']} is not supported")
            return cls(
                tree=ids.parse_id(d["tree"]),
                root=Node.from_dict(d["root"]),
                host=str(d["host"]),
                volume=str(d["volume"]),
                time=str(d["time"]),
                tags=[str(t) for t in d.get("tags", [])],
                pinned=bool(d.get("pinned", False)),
                parent=None if d.get("parent") is None else ids.parse_id(d["parent"]),
                stats=SnapshotStats(**d.get("stats", {})),
                program_version=str(d.get("program_version", "unknown")),
                original=None if d.get("original") is None else ids.parse_id(d["original"]),
                id=snapshot_id,
                excludes=[str(p) for p in d.get("excludes", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"snapshot {snapshot_id.hex()} is malformed: {exc}", _HINT
            ) from None


def save_snapshot(repo: Repository, snap: Snapshot) -> Snapshot:
    """Seal and write ``snap`` (under a fresh id unless it has one); returns it with its id."""
    if not snap.id:
        snap.id = ids.random_id()
    body = json.dumps(snap.to_dict(), sort_keys=True).encode()
    sealed = repo.cipher.seal(body, ids.aad(_AAD_KIND, snap.id))
    repo.backend.put_bytes(ids.snapshot_key(snap.id), sealed)
    return snap


def load_snapshot(repo: Repository, snapshot_id: bytes) -> Snapshot:
    """Read, authenticate and parse one snapshot."""
    try:
        data = repo.backend.get_bytes(ids.snapshot_key(snapshot_id))
    except NotFound:
        raise NotFound("snapshot", snapshot_id.hex(), "list the snapshots to see which exist") \
            from None
    what = f"snapshot {snapshot_id.hex()}"
    body = repo.cipher.open_(data, ids.aad(_AAD_KIND, snapshot_id), what)
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise IntegrityError(f"{what} is malformed: {exc}", _HINT) from None
    return Snapshot.from_dict(doc, snapshot_id)


def snapshot_ids(repo: Repository) -> list[bytes]:
    """Ids of every snapshot object in the repository."""
    return [ids.id_from_key(o.key) for o in repo.backend.list(ids.SNAPSHOTS_PREFIX)]


def find_snapshot(repo: Repository, prefix: str) -> Snapshot:
    """The snapshot whose hex id starts with ``prefix`` (at least 4 digits, unique)."""
    prefix = prefix.lower()
    matches = [i for i in snapshot_ids(repo) if i.hex().startswith(prefix)] if len(prefix) >= 4 \
        else []
    if len(matches) != 1:
        raise NotFound(
            "snapshot", prefix,
            "give at least 4 hex digits of a snapshot id that matches exactly one snapshot",
        )
    return load_snapshot(repo, matches[0])


def list_snapshots(
    repo: Repository, *, host: str | None = None, volume: str | None = None,
    tag: str | None = None,
) -> list[Snapshot]:
    """Snapshots matching the filters, oldest first (damaged ones raise IntegrityError)."""
    out = []
    for sid in snapshot_ids(repo):
        s = load_snapshot(repo, sid)
        if host is not None and s.host != host:
            continue
        if volume is not None and s.volume != volume:
            continue
        if tag is not None and tag not in s.tags:
            continue
        out.append(s)
    return sorted(out, key=lambda s: (s.time, s.id))


def latest_snapshot(repo: Repository, host: str, volume: str) -> Snapshot | None:
    """The newest snapshot of ``volume`` on ``host`` (the natural parent of a backup)."""
    snaps = list_snapshots(repo, host=host, volume=volume)
    return snaps[-1] if snaps else None


def tag_snapshot(
    repo: Repository, snap: Snapshot, *, add: Sequence[str] = (), remove: Sequence[str] = ()
) -> Snapshot:
    """Add and remove tags; rewrites the snapshot object under its id."""
    snap.tags = sorted((set(snap.tags) | set(add)) - set(remove))
    return save_snapshot(repo, snap)


def pin_snapshot(repo: Repository, snap: Snapshot, pinned: bool = True) -> Snapshot:
    """Pin (protect from forget) or unpin a snapshot."""
    snap.pinned = pinned
    return save_snapshot(repo, snap)
