"""Which exclude patterns a backup of a volume applies: the volume's ``volkeeper.exclude``
label, the request's patterns and the lines of a ``.volkeeperignore`` file at the volume
root (read when the worker sees the volume's mountpoint), in that order. The matching is
``common.archive.excludes``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from common.archive.excludes import Excludes, parse_ignore_file
from common.docker import VolumeInfo
from common.hooks import labels

log = logging.getLogger(__name__)

#: a .volkeeperignore larger than this is not read (it is a list of patterns)
MAX_IGNORE_BYTES = 64 * 1024


def ignore_file_patterns(root: Path | None) -> list[str]:
    """The patterns of ``<root>/.volkeeperignore`` ([] without one, or without access)."""
    if root is None:
        return []
    path = root / labels.IGNORE_FILE
    try:
        if path.is_symlink() or not path.is_file():
            return []
        with path.open("rb") as f:
            data = f.read(MAX_IGNORE_BYTES + 1)
    except OSError as e:
        log.warning("cannot read %s: %s", path, e)
        return []
    if len(data) > MAX_IGNORE_BYTES:
        log.warning("%s is larger than %d bytes; only its beginning is used", path,
                    MAX_IGNORE_BYTES)
    return parse_ignore_file(data[:MAX_IGNORE_BYTES].decode("utf-8", "replace"))


def excludes_for(volume: VolumeInfo, requested: Sequence[str], root: Path | None
                 ) -> Excludes:
    """The patterns a backup of ``volume`` applies (``root``: its mountpoint, when this
    process sees it). InvalidInput names a bad pattern."""
    return Excludes.of([*labels.patterns(volume.labels.get(labels.EXCLUDE)), *requested,
                        *ignore_file_patterns(root)])
