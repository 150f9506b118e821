"""The two kinds of backup behind one seam: ``format_for(name)`` / ``format_of(backup)``
give the ``Format`` (``base``) that backs up, validates, restores, verifies, compares,
takes safety snapshots, forgets, copies and labels backups of that kind —
``ArchiveFormat`` for tar, tar.gz and tar.zst, ``RepositoryFormat`` for ``repo``. The
format names and their traits are in ``common.formats``.
"""

from __future__ import annotations

from common.engine.formats.archive import ArchiveFormat
from common.engine.formats.base import Format
from common.engine.formats.repository import RepositoryFormat
from common.engine.records import StoredBackup
from common.formats import ARCHIVE_FORMATS, REPO_FORMAT, traits_of

_FORMATS: dict[str, Format] = {
    **{name: ArchiveFormat(name) for name in ARCHIVE_FORMATS},
    REPO_FORMAT: RepositoryFormat(),
}


def format_for(name: str) -> Format:
    """The format called ``name``; InvalidInput names the known ones."""
    traits_of(name)  # raises for an unknown name
    return _FORMATS[name]


def format_of(backup: StoredBackup) -> Format:
    """The format of a stored backup."""
    return format_for(backup.format)


__all__ = ["ArchiveFormat", "Format", "RepositoryFormat", "format_for", "format_of"]
