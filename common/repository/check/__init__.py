"""Check: is every object of a repository there and intact (``checker``).

Structure: index files, packs and their headers (``pack_verify``), snapshots and their
trees (``snapshot_check``); optionally the data itself, every blob decoded and re-hashed.
What was found is a ``report``: damaged objects with the snapshot paths that need them.
"""
