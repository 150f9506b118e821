"""A backup worker process: ``python -S -m common.repository.backup.worker_main``.

``workers.ProcessReaders`` starts it (see ``workers`` for the messages): it reads groups
of small files, keeps their data, and compresses and seals the blobs the walk wants. It
imports only that (``small``, the codec, ``worker_serve``), not the walking side's
threads, futures and ``subprocess``.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

from common.repository.backup.small import open_directory, read_small
from common.repository.core.ids import BlobType
from common.repository.system.worker_serve import serve

if TYPE_CHECKING:
    from collections.abc import Callable


def _read_group(codec: Any, dir_path: str, dir_id: tuple[int, int], names: list[str],
                sizes: list[int]) -> tuple[list[tuple[Any, ...]], list[bytes | None],
                                           list[bytes | None]]:
    """Read a group: (answers, data, blob ids)."""
    def failed(code: int, why: str | None) -> tuple[list[tuple[Any, ...]], list[bytes | None],
                                                    list[bytes | None]]:
        return [({}, -1, None, code, why)] * len(names), [], []

    try:
        dir_fd = open_directory(dir_path)
    except OSError as exc:
        return failed(exc.errno or errno.EIO, exc.strerror)
    try:
        st = os.fstat(dir_fd)
        if (st.st_dev, st.st_ino) != tuple(dir_id):  # replaced since the walk opened it
            return failed(errno.ENOENT, "directory replaced during the backup")
        answers: list[tuple[Any, ...]] = []
        data: list[bytes | None] = []
        ids: list[bytes | None] = []
        for name, size in zip(names, sizes, strict=True):
            small = read_small(dir_fd, name, size, codec.blob_id)
            err = small.error
            answers.append((small.xattrs, small.size, small.blob_id,
                            (err.errno or errno.EIO) if err is not None else 0,
                            err.strerror if err is not None else None))
            data.append(small.data)
            ids.append(small.blob_id)
        return answers, data, ids
    finally:
        os.close(dir_fd)


def _setup(init: tuple[Any, ...]) -> Callable[[Any], Any]:
    """The message handler for the key in ``init``: reads of groups
    keep their data until the walk says which of it to store."""
    from common.repository.core.blob import BlobCodec
    from common.repository.core.crypto import Key

    key, encrypted, level = init
    codec = BlobCodec(Key.from_bytes(key), encrypted, level)
    held: dict[int, tuple[list[bytes | None], list[bytes | None]]] = {}

    def handle(head: tuple[Any, ...]) -> Any:
        if head[0] == "ping":
            return None
        if head[0] == "read":
            _, seq, dir_path, dir_id, names, sizes = head
            answers, data, ids = _read_group(codec, dir_path, dir_id, names, sizes)
            held[seq] = (data, ids)
            return answers
        _, seq, store = head
        data, ids = held.pop(seq, ([], []))
        blobs = [codec.encode(BlobType.DATA, data[i], ids[i]) for i in store]
        return ([b.blob_id for b in blobs], [b.data for b in blobs],
                [b.raw_length for b in blobs], [b.compression for b in blobs])

    return handle


def main() -> None:
    """Initialise from the first message, then answer messages."""
    serve(_setup)


if __name__ == "__main__":
    main()
