"""Maintenance of a repository: what runs beside (or instead of) backups.

``prune`` forgets snapshots and reclaims what nothing references (planned by
``prune_plan``); ``copy`` copies a snapshot into another repository; both write through
``packer``, a synchronous blob sink. ``stats`` measures sizes and ratios; ``keyring``
adds and removes passphrases.
"""
