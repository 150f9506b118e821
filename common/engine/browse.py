"""One directory level of a stored backup, for a browsable tree (the restore wizard's
"what" step): each entry's name, type, size and modification time.

An archive is listed from its manifest (read as a stream: the children of the directory
and the subdirectories that only deeper members reveal); a repository snapshot from its
trees, walked down to the directory. Nothing is restored or written."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from common.archive import read_manifest
from common.config import Settings
from common.engine import repo
from common.engine.records import StoredBackup
from common.errors import InvalidInput, NotFound
from common.storage.base import Backend

#: entries one listing returns at most (the rest are counted, not listed)
MAX_ENTRIES = 2000


@dataclass
class Listing:
    path: str
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    more: int = 0

    def add(self, name: str, kind: str, size: int = 0, mtime: float | None = None) -> None:
        if name in self.entries:
            if kind == "dir":  # a member "a/b" met before the member "a" itself
                self.entries[name].update(type="dir", mtime=mtime or self.entries[name]["mtime"])
            return
        if len(self.entries) >= MAX_ENTRIES:
            self.more += 1
            return
        self.entries[name] = {"name": name, "type": kind, "size": size, "mtime": mtime}

    def as_result(self) -> dict[str, Any]:
        order = sorted(self.entries.values(), key=lambda e: (e["type"] != "dir", e["name"]))
        return {"path": self.path, "entries": order, "more": self.more}


def clean_path(path: str) -> str:
    """A volume-relative directory path (``""``: the root). InvalidInput for ``..``."""
    parts = [p for p in str(path).strip().strip("/").split("/") if p and p != "."]
    if ".." in parts:
        raise InvalidInput(f"invalid path {path!r}: '..' is not allowed",
                           "give a path inside the volume, e.g. db/base")
    return "/".join(parts)


def archive_listing(backend: Backend, backup: StoredBackup, path: str) -> dict[str, Any]:
    """The directory ``path`` of an archive backup, from its manifest."""
    listing = Listing(path)
    prefix = "./" + path + "/" if path else "./"
    found = not path
    with backend.open_reader(backup.manifest_key) as raw, \
            io.TextIOWrapper(raw, encoding="utf-8") as text:
        for entry in read_manifest(text).entries():
            # "./a", "a" and the root as "." (how backups write it), "./" or ""
            name = ("./" + entry.path.removeprefix("./")).rstrip("/").removesuffix("/.")
            if name == prefix.rstrip("/"):
                found = True
                if entry.type != "dir":
                    raise _not_a_directory(path)
                continue
            if not name.startswith(prefix):
                continue
            found = True
            rest = name[len(prefix):]
            if "/" in rest:
                listing.add(rest.split("/", 1)[0], "dir")
            else:
                listing.add(rest, entry.type, entry.size or 0, entry.mtime)
    if not found:
        raise _missing(path, backup)
    return listing.as_result()


def repo_listing(backend: Backend, backup: StoredBackup, settings: Settings,
                 path: str) -> dict[str, Any]:
    """The directory ``path`` of a repository snapshot, from its trees."""
    repository, snap = repo.load_backup(backend, backup, settings)
    repository.load_index()
    tree_id: bytes | None = snap.tree
    for part in [p for p in path.split("/") if p]:
        node = repository.read_tree(tree_id).by_name().get(part) if tree_id else None
        if node is None:
            raise _missing(path, backup)
        if node.type != "dir" or node.subtree is None:
            raise _not_a_directory(path)
        tree_id = node.subtree
    listing = Listing(path)
    if tree_id is not None:
        for node in repository.read_tree(tree_id).nodes:
            listing.add(node.name, node.type, node.size, node.mtime_ns / 1e9)
    return listing.as_result()


def _missing(path: str, backup: StoredBackup) -> NotFound:
    return NotFound("path", path, f"list the backup's root first (backup {backup.id})")


def _not_a_directory(path: str) -> InvalidInput:
    return InvalidInput(f"{path!r} is a file, not a directory",
                        "list its parent directory to see it")
