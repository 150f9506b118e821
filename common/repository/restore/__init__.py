"""Restore: a snapshot into an empty directory (``restorer``) or a tar stream
(``tar_export``).

The restorer reads the snapshot's ``trees``, cuts the files into *batches*, reads the
pack ranges each batch needs (``read``) and hands the batch to a writer (``batch``) on a
thread or in a worker process (``workers``: ``python -m common.repository.restore.workers``).
A tar export fetches blobs in stream order, a window ahead (``blob_fetch``).
"""
