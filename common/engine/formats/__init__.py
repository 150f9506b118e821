"""The two kinds of backup behind one seam: ``format_for(name)`` / ``format_of(backup)``
give the ``Format`` (``base``) that backs up, validates, restores, verifies, compares,
takes safety snapshots, forgets, copies and labels backups of that kind —
``ArchiveFormat`` for tar, tar.gz and tar.zst, ``RepositoryFormat`` for ``repo``. The
format names and their traits are in ``common.formats``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.engine.formats.archive import ArchiveFormat
from common.engine.formats.base import Format
from common.engine.records import StoredBackup
from common.formats import ARCHIVE_FORMATS, REPO_FORMAT, traits_of

if TYPE_CHECKING:
    from common.engine.formats.repository import RepositoryFormat

# The repository format (and with it ``common.repository``: ~60 modules, cryptography,
# the chunker) loads with the first use of a ``repo`` backup: an archive's backup or
# restore does without it.
_FORMATS: dict[str, Format] = {name: ArchiveFormat(name) for name in ARCHIVE_FORMATS}


def format_for(name: str) -> Format:
    """The format called ``name``; InvalidInput names the known ones."""
    traits_of(name)  # raises for an unknown name
    if name == REPO_FORMAT and name not in _FORMATS:
        _FORMATS[name] = _repository_format()
    return _FORMATS[name]


def _repository_format() -> Format:
    from common.engine.formats.repository import RepositoryFormat

    return RepositoryFormat()


def __getattr__(name: str) -> Any:
    if name == "RepositoryFormat":
        from common.engine.formats.repository import RepositoryFormat

        return RepositoryFormat
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def format_of(backup: StoredBackup) -> Format:
    """The format of a stored backup."""
    return format_for(backup.format)


__all__ = ["ArchiveFormat", "Format", "RepositoryFormat", "format_for", "format_of"]
