"""Backup of named streams (stdout of a database dump) into a repository snapshot.

The third front end of the backup pipeline, like ``restic backup --stdin``: each stream
is read to its end and cut by the repository's chunker as it comes — its size is not
known beforehand and nothing is written anywhere else first — then stored through the
same ``pipeline.Pipeline``, so tomorrow's dump shares every unchanged chunk with today's.
The snapshot's tree is ``<directory>/<name>`` for each stream (files of mode 0600, the
directory 0700, owner 0, mtime the backup's time). A stream that raises (a dump that
failed) aborts the backup: no snapshot is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import BinaryIO

from common.progress import NullTracker, ProgressTracker
from common.repository.backup.pipeline import BackupOptions, Pipeline
from common.repository.core.ids import BlobType
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, SnapshotStats, save_snapshot
from common.repository.core.tree import Node, Tree, check_name


def _store_tree(repo: Repository, pipe: Pipeline, nodes: list[Node]) -> bytes:
    data = Tree(nodes).encode()
    tree_id = repo.codec.blob_id(data)
    pipe.submit(BlobType.TREE, data, tree_id)
    return tree_id


def _store_stream(repo: Repository, pipe: Pipeline, stream: BinaryIO, node: Node,
                  stats: SnapshotStats, progress: ProgressTracker) -> None:
    for chunk in repo.chunker().chunk_stream(stream):
        blob_id = repo.codec.blob_id(chunk)
        node.content.append(blob_id)
        pipe.submit(BlobType.DATA, chunk, blob_id)
        node.size += len(chunk)
        progress.add(len(chunk), 0)
    stats.files += 1
    stats.files_read += 1
    stats.bytes += node.size
    stats.bytes_read += node.size
    progress.add(0, 1)


def backup_streams(
    repo: Repository,
    streams: Iterable[tuple[str, BinaryIO]],
    *,
    directory: str,
    host: str,
    volume: str,
    tags: Sequence[str] = (),
    parent: Snapshot | None = None,
    progress: ProgressTracker | None = None,
    options: BackupOptions = BackupOptions(),
    before_commit: Callable[[], None] | None = None,
) -> Snapshot:
    """Back up each (name, readable) of ``streams`` as ``directory/name`` of a new
    snapshot of ``repo`` (``parent`` is recorded only); see the module doc."""
    progress = progress or NullTracker()
    progress.set_phase("indexing")
    repo.load_index()
    stats = SnapshotStats()
    progress.set_phase("backup")
    pipe = Pipeline(repo, stats, options)
    now = time.time_ns()
    files: list[Node] = []
    try:
        for name, stream in streams:
            node = Node(name=check_name(name), type="file", mode=0o600, mtime_ns=now)
            _store_stream(repo, pipe, stream, node, stats, progress)
            files.append(node)
        folder = Node(name=check_name(directory), type="dir", mode=0o700, mtime_ns=now,
                      subtree=_store_tree(repo, pipe, sorted(files, key=lambda n: n.name)))
        tree_id = _store_tree(repo, pipe, [folder])
        root = Node(name="root", type="dir", mode=0o755, mtime_ns=now, subtree=tree_id)
        stats.dirs += 2
    except BaseException:
        pipe.abort()
        raise
    pipe.close()
    snap = Snapshot(tree=tree_id, root=root, host=host, volume=volume, tags=list(tags),
                    parent=parent.id if parent is not None else None, stats=stats)
    progress.checkpoint()  # a cancelled job stops here: packs stay, no snapshot
    if before_commit is not None:
        before_commit()
    return save_snapshot(repo, snap)
