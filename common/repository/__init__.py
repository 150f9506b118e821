"""volkeeper's native repository format: deduplicated, compressed, encrypted backups.

Concepts (the full specification is docs/repository-format.md):

- *chunk*: a piece of a file cut by content-defined chunking; named by the keyed BLAKE3
  hash of its plaintext, so equal content is stored once per repository.
- *tree*: a directory listing serialised as a blob; it names the chunks of each file.
- *blob*: a chunk or a tree, compressed (zstd, when it helps) and sealed on its own
  (AES-256-GCM).
- *pack*: a storage object holding many blobs and a sealed header listing them.
- *index*: files mapping blob id → (pack, offset, length); an opened ``Repository``
  loads them into one compact in-memory ``Index`` and reads every blob through it.
- *snapshot*: a small object naming the root tree of one backup; written last, so a
  killed backup leaves no snapshot, only unreferenced packs.
- *key file*: the master key wrapped by a passphrase with scrypt; the *config* object
  holds the parameters every writer shares.
- *lock*: per-operation shared (backup, copy, restore) or exclusive (forget, prune)
  lock objects.

The sub-packages, each importing only those above it in this list:

- ``core``: the format itself — ids, crypto, keys, config, chunker, blob, pack, index,
  tree, snapshot, locks — and ``Repository``, an opened repository that owns its index;
- ``system``: what the repository asks of the local machine, none of it format — files
  with holes (``sparse``), the allocator (``malloc``), worker processes
  (``worker_pipe``);
- ``backup``: a directory or a tar stream into a new snapshot;
- ``restore``: a snapshot into a directory or a tar stream;
- ``check``: is every object there, and intact;
- ``maintenance``: forget and prune, copy between repositories, statistics, passphrases.

Here stand only the names every user of the format starts from: ``Repository``,
``open_repository``, ``init_repository`` and ``ids`` (the object ids and storage keys).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.repository.core import ids
    from common.repository.core.repository import Repository, init_repository, open_repository

#: imported on first use: a worker process (``python -m common.repository.….workers``)
#: starts with this package and should not pay for storage, keys and locks it never uses
_LAZY = {"ids": "common.repository.core.ids", "Repository": "common.repository.core.repository",
         "init_repository": "common.repository.core.repository",
         "open_repository": "common.repository.core.repository"}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(where)
    return module if name == "ids" else getattr(module, name)


__all__ = ["Repository", "ids", "init_repository", "open_repository"]
