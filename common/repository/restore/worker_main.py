"""A restore worker process: ``python -S -m common.repository.restore.worker_main``.

``workers.ProcessRunner`` starts it and sends it batches (``worker_pipe``); it writes them
with a ``BatchWriter`` and answers each with the batch's result. It imports only what
writing a batch needs (``batch``, the codec, ``worker_serve``): not the restoring side's
threads, futures and ``subprocess`` (see ``worker_serve``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from common.repository.restore.batch import BatchWriter, Result
from common.repository.system.malloc import RESTORE_TRIM_THRESHOLD
from common.repository.system.worker_serve import read_exact, serve

if TYPE_CHECKING:
    from collections.abc import Callable


def _setup(init: tuple[Any, ...]) -> Callable[[Any], Result]:
    """The batch handler for the key and destination in ``init``."""
    from common.repository.core.blob import BlobCodec
    from common.repository.core.crypto import Key

    os.umask(0)  # files are created with their final mode: no chmod needed (exact_modes)
    key, encrypted, level, dest, owner, exact_modes = init
    writer = BatchWriter(BlobCodec(Key.from_bytes(key), encrypted, level), dest,
                         tuple(owner) if owner is not None else None,
                         0 if exact_modes else None)

    def handle(head: tuple[Any, ...]) -> Result:
        blobs, files, lengths = head
        spans: list[bytearray] = []
        for n in lengths:
            span = read_exact(0, n)
            if span is None:
                raise EOFError
            spans.append(span)
        return writer.run((spans, blobs, files))

    return handle


def main() -> None:
    """Initialise from the first message, then answer batches."""
    serve(_setup, RESTORE_TRIM_THRESHOLD)


if __name__ == "__main__":
    main()
