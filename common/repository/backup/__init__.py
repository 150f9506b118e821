"""Backup: a directory (``archiver``) or a tar stream (``tar_ingest``) into a new snapshot.

The walk chunks files and skips what the parent snapshot or the index already holds;
small files are read ahead on threads (``read``) or, in a large backup, in worker
processes (``workers``; the process runs ``worker_main``); new blobs go
through the ``pipeline`` — encoder threads, then the packer, which writes packs and index
files. The snapshot is written last.
"""
