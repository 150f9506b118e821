"""Storage backends behind one contract (``base.Backend``).

A *target* is a named storage location (``file:///srv/backups``, ``s3://bucket/prefix``).
``registry.open_backend(url, options, secrets, settings)`` maps a URL scheme to its backend
and composes the cross-cutting wrappers (retry with backoff, bandwidth limit) around it, as
restic does: backends stay small, behaviour that applies to all of them is a wrapper.
"""

from common.storage.base import Backend, ObjectInfo, ObjectWriter, check_key

__all__ = ["Backend", "ObjectInfo", "ObjectWriter", "check_key"]
