"""Restore: a snapshot into an empty directory (``restorer``), into a directory holding an
earlier copy, writing only what differs (``sync``: the cut-over of a migration), or a tar
stream (``tar_export``).

The restorer reads the snapshot's ``trees``, cuts the files into *batches*, reads the
pack ranges each batch needs (``read``) and hands the batch to a writer (``batch``) on a
thread or in a worker process (``workers``; the process runs ``worker_main``).
A sync (``sync``, ``syncer``, ``sync_fs``) walks the snapshot and the destination together
and hands only the changed data to the same batches. A tar export fetches blobs in stream
order, a window ahead (``blob_fetch``).
"""
