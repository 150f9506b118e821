"""Which exclude patterns a backup of a volume applies: the volume's ``volkeeper.exclude``
label, the request's patterns and the lines of a ``.volkeeperignore`` file at the volume
root (read through the mountpoint, or through the Docker API), in that order. The matching is
``common.archive.excludes``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from common.archive.excludes import Excludes, parse_ignore_file
from common.docker import DockerHost, VolumeInfo
from common.errors import VolkeeperError
from common.hooks import labels

log = logging.getLogger(__name__)

#: a .volkeeperignore larger than this is not read (it is a list of patterns)
MAX_IGNORE_BYTES = 64 * 1024


def read_ignore_file(docker: DockerHost, volume: str, root: Path | None) -> list[str]:
    """The patterns of the volume's ``.volkeeperignore`` ([] without one): read through
    ``root`` (its mountpoint) when this process sees it, else through the Docker API."""
    if root is not None:
        return ignore_file_patterns(root)
    try:
        data = docker.read_file(volume, labels.IGNORE_FILE, MAX_IGNORE_BYTES + 1)
    except VolkeeperError as e:
        log.warning("cannot read %s of volume %s: %s", labels.IGNORE_FILE, volume, e)
        return []
    return [] if data is None else _patterns(data, f"{volume}/{labels.IGNORE_FILE}")


def ignore_file_patterns(root: Path) -> list[str]:
    """The patterns of ``<root>/.volkeeperignore`` ([] without one, or without access)."""
    path = root / labels.IGNORE_FILE
    try:
        if path.is_symlink() or not path.is_file():
            return []
        with path.open("rb") as f:
            data = f.read(MAX_IGNORE_BYTES + 1)
    except OSError as e:
        log.warning("cannot read %s: %s", path, e)
        return []
    return _patterns(data, str(path))


def _patterns(data: bytes, where: str) -> list[str]:
    if len(data) > MAX_IGNORE_BYTES:
        log.warning("%s is larger than %d bytes; only its beginning is used", where,
                    MAX_IGNORE_BYTES)
    return parse_ignore_file(data[:MAX_IGNORE_BYTES].decode("utf-8", "replace"))


def excludes_for(volume: VolumeInfo, requested: Sequence[str], ignore_file: Sequence[str]
                 ) -> Excludes:
    """The patterns a backup of ``volume`` applies: its label's, the ``requested`` ones,
    its ``.volkeeperignore``'s (``read_ignore_file``). InvalidInput names a bad one."""
    return Excludes.of([*labels.patterns(volume.labels.get(labels.EXCLUDE)), *requested,
                        *ignore_file])
