"""Shared helpers over an opened repository: loading the index, reading blobs and trees.

``load_index`` reads every index file into one in-memory ``Index`` (damaged index files
are reported, not fatal, so check can name them and a backup can still proceed — it will
just store again what those files described). ``read_tree`` resolves a tree id through
the index to its pack and decodes (and verifies) it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import IntegrityError, NotFound
from common.repository.core import ids
from common.repository.core.config import Repository
from common.repository.core.ids import BlobType
from common.repository.core.index import Index, IndexEntry, IndexFile, encode_index, load_index_file
from common.repository.core.pack import read_blob
from common.repository.core.tree import Tree

_HINT = "run a repository check to see what is damaged"


@dataclass
class LoadedIndex:
    """The merged index plus what could not be read."""

    index: Index
    files: list[bytes] = field(default_factory=list)
    damaged: dict[bytes, str] = field(default_factory=dict)


def load_index(repo: Repository) -> LoadedIndex:
    """Read every index file into one ``Index``; damaged files are listed, not fatal."""
    out = LoadedIndex(Index())
    for info in repo.backend.list(ids.INDEX_PREFIX):
        try:
            index_id = ids.id_from_key(info.key)
        except Exception:  # noqa: BLE001 - a stray object: report it
            out.damaged[b""] = f"unexpected object {info.key}"
            continue
        out.files.append(index_id)
        try:
            data = repo.backend.get_bytes(info.key)
            load_index_file(repo.cipher, index_id, data, out.index)
        except (IntegrityError, NotFound) as exc:
            out.damaged[index_id] = str(exc)
    out.index.flush()
    return out


def write_index_file(repo: Repository, entries: list[IndexEntry]) -> bytes | None:
    """Write one new index file listing ``entries``; returns its id (None when empty)."""
    if not entries:
        return None
    index_id = ids.random_id()
    repo.backend.put_bytes(
        ids.index_key(index_id), encode_index(repo.cipher, index_id, IndexFile(list(entries)))
    )
    return index_id


def read_blob_by_id(repo: Repository, index: Index, blob_id: bytes, blob_type: BlobType) -> bytes:
    """Find a blob in the index, read it from its pack and verify it."""
    entry = index.lookup(blob_id)
    if entry is None or entry.blob_type != blob_type:
        raise IntegrityError(
            f"{blob_type.name.lower()} blob {blob_id.hex()} is not in the repository index",
            _HINT,
        )
    try:
        return read_blob(repo.backend, ids.pack_key(entry.pack_id), entry, repo.codec)
    except NotFound:
        raise IntegrityError(
            f"pack {entry.pack_id.hex()} holding {blob_type.name.lower()} blob "
            f"{blob_id.hex()} is missing",
            _HINT,
        ) from None


def read_tree(repo: Repository, index: Index, tree_id: bytes) -> Tree:
    """Load and verify one tree blob."""
    data = read_blob_by_id(repo, index, tree_id, BlobType.TREE)
    return Tree.decode(data, f"tree {tree_id.hex()}")
