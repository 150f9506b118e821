"""The names of the backup formats, and what each one can do — the one place both are
defined (the engine, the job services, the API and the CLI import them from here).

Two kinds of backup exist: *archives* (``tar``, ``tar.gz``, ``tar.zst``: one archive
object plus a JSON Lines manifest, restorable with plain tar) and the native
*repository* (``repo``: a deduplicated, encrypted snapshot in the target's repository).
How each kind is backed up, restored, verified, compared, forgotten and copied is the
engine's ``common.engine.formats``; this module holds only names and traits, so that the
API process can reason about a format without importing the engine.

Catalog columns keep one meaning whatever the format: ``key`` is the stored object that
names the backup (the archive, or the snapshot object); ``manifest_key`` the archive's
manifest object ("" for snapshots: their trees are the manifest); ``checksum`` the checksum
of the archive object (``blake3:<hex>``, or a sha256 hex for older archives; "" for
snapshots); ``snapshot_id`` the repository snapshot's id
("" for archives).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from common.errors import InvalidInput

ArchiveFormat = Literal["tar", "tar.gz", "tar.zst"]
#: Every backup format: the portable archives, and ``repo`` (the native repository).
BackupFormat = Literal["tar", "tar.gz", "tar.zst", "repo"]

ARCHIVE_FORMATS: tuple[ArchiveFormat, ...] = get_args(ArchiveFormat)
REPO_FORMAT: Literal["repo"] = "repo"
FORMATS: tuple[BackupFormat, ...] = get_args(BackupFormat)
#: The format of the safety snapshots replace-restores of archive backups take (restorable
#: with plain tar; a repo backup's safety snapshot is a snapshot in its repository).
SAFETY_FORMAT: ArchiveFormat = "tar.zst"


@dataclass(frozen=True)
class Traits:
    """What a format can do, as far as the job services and the API must know."""

    name: str
    #: a portable archive (archive object + manifest); else a repository snapshot
    archive: bool
    #: ``verify --subset`` reads a random share of the data (archives are one stream)
    subset_verify: bool
    #: tags and pin live in the stored backup too (a snapshot), not only in the catalog
    labels_in_storage: bool


_TRAITS: dict[str, Traits] = {**{name: Traits(name, archive=True, subset_verify=False,
                           labels_in_storage=False) for name in ARCHIVE_FORMATS},
           REPO_FORMAT: Traits(REPO_FORMAT, archive=False, subset_verify=True,
                               labels_in_storage=True)}


def is_archive(name: str | None) -> bool:
    """Whether ``name`` names an archive format (False for ``repo``, None or an unknown
    name: a job's parameters that name none)."""
    traits = _TRAITS.get(name) if name else None
    return traits is not None and traits.archive


def traits_of(name: str) -> Traits:
    """The traits of format ``name``; InvalidInput names the known ones."""
    try:
        return _TRAITS[name]
    except KeyError:
        raise InvalidInput(f"unknown format {name!r}",
                           f"use one of {', '.join(FORMATS)}") from None
