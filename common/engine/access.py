"""Choosing how to read or write a volume's content.

*direct*: the worker sees the volume's mountpoint (it runs on the host, or in a container
with the Docker volumes directory bind-mounted at the same path) and GNU tar reads/writes it
— fastest, and full fidelity (xattrs, sparse files). *docker-api*: a never-started helper
container mounts the volume and dockerd streams a tar through its archive API — works for
any volume driver and any worker placement, without pulling an image. ``auto`` uses direct
when the mountpoint is reachable, else the Docker API. See docs/volume-access.md.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import common.archive.gnutar as gnutar
from common.config import Settings
from common.docker import DockerHost
from common.errors import DockerError


def direct_path(docker: DockerHost, volume: str, settings: Settings) -> Path | None:
    if settings.volume_access == "docker-api":
        return None
    path = docker.local_path(volume)
    if path is None and settings.volume_access == "direct":
        raise DockerError(
            f"the mountpoint of volume {volume!r} is not accessible to this worker",
            "run the worker on the host as root, bind-mount /var/lib/docker/volumes, or set "
            "VOLKEEPER_VOLUME_ACCESS=auto")
    return path


def bound_dir(docker: DockerHost, volume: str) -> Path | None:
    """For a ``local`` volume bound to a directory (``o=bind``, ``device=DIR``): that
    directory when this process can read and write it (the volume's files are there even
    while nothing mounts it); None otherwise."""
    info = docker.volume(volume)
    opts = info.options or {}
    device = opts.get("device")
    if info.driver == "local" and device and "bind" in opts.get("o", "").split(","):
        where = Path(device)
        if where.is_dir() and os.access(where, os.R_OK | os.W_OK | os.X_OK):
            return where
    return None


@contextlib.contextmanager
def tar_source(docker: DockerHost, volume: str, settings: Settings,
               exclude: Sequence[str] = ()) -> Iterator[BinaryIO]:
    """A readable tar stream of the volume's content (members relative to its root),
    without the volume-relative paths ``exclude`` (direct access only: the Docker API
    path ignores them, its callers refuse excludes there)."""
    path = direct_path(docker, volume, settings)
    if path is not None:
        with gnutar.create_stream(path, exclude) as stream:
            yield stream
    else:
        with docker.archive_source(volume) as stream:
            yield stream


@contextlib.contextmanager
def tar_sink(docker: DockerHost, volume: str, settings: Settings,
             members: list[str] | None = None) -> Iterator[BinaryIO]:
    """A writable stream; the tar written to it is extracted into the volume (only
    ``members`` — ``./path`` names — when given). Leaving the block waits for extraction to
    finish and raises if it failed."""
    path = direct_path(docker, volume, settings)
    if path is not None:
        with gnutar.extract_stream(path, members) as sink:
            yield sink
        return
    if members:
        raise DockerError(
            f"volume {volume!r} is only reachable through the Docker API, which cannot "
            "restore selected paths", "restore the whole backup into a new volume instead")
    rfd, wfd = os.pipe()
    errors: list[BaseException] = []

    def consume() -> None:
        with os.fdopen(rfd, "rb") as r:
            try:
                docker.archive_sink(volume, r)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                errors.append(e)
                r.read()  # drain so the writer never blocks

    t = threading.Thread(target=consume, name=f"sink-{volume}", daemon=True)
    t.start()
    w = os.fdopen(wfd, "wb")
    try:
        yield w
    finally:
        w.close()
        t.join()
    if errors:
        raise errors[0]


def clear_volume(docker: DockerHost, volume: str, settings: Settings) -> bool:
    """Remove every entry in the volume (used to undo a failed restore into an empty one).
    Returns False when that is impossible (Docker's archive API cannot delete files)."""
    path = direct_path(docker, volume, settings)
    if path is None:
        return False
    import shutil

    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
    return True
