"""An archive backup's two stored objects (the archive and its manifest): checking they
are there before a restore, deleting them, copying them to another target."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from common.archive import manifest as read
from common.archive import read_manifest
from common.archive.checksum import ObjectHash, same
from common.archive.tarmember import TarEntry
from common.engine.records import Check, CopyOutcome, StoredBackup
from common.errors import Conflict, IntegrityError, NotFound, StorageError
from common.progress import ProgressTracker
from common.storage.base import Backend
from common.units import size

_CHUNK = 1 << 20


def check_stored(backend: Backend, backup: StoredBackup,
                 paths: Sequence[str] | None) -> list[Check]:
    """Both objects are present (with their size), the manifest is intact and is this
    archive's (``check_manifest``), and every selected path is in it (read as a
    stream)."""
    checks = []
    present = True
    for key, what in ((backup.key, "archive"), (backup.manifest_key, "manifest")):
        try:
            info = backend.stat(key)
        except NotFound:
            checks.append(Check(f"{what} present", False,
                                f"the {what} {key} is missing from the target"))
            present = False
            continue
        except StorageError as e:
            checks.append(Check(f"{what} present", False, f"the target cannot be read: {e}"))
            present = False
            continue
        checks.append(Check(f"{what} present", True, f"{key} ({size(info.size)})"))
    if present:
        checks.append(check_manifest(backend, backup))
    if paths and checks[-1].ok:
        checks.append(_check_paths(backend, backup, paths))
    return checks


def check_manifest(backend: Backend, backup: StoredBackup) -> Check:
    """The manifest is part of an archive backup's proof (what it holds, each file's
    content digest): a restore goes on only when it is intact (its lines match the sha256
    in its summary) and is this archive's (its header names the key and format, its
    summary the archive's checksum and the catalog's totals). Read as a stream, hashed
    rather than parsed entry by entry."""
    try:
        header, summary = read.check_manifest(lambda: _lines(backend, backup.manifest_key))
        problem = _not_this_archive(header, summary, backup)
    except (IntegrityError, UnicodeDecodeError) as e:
        problem = f"it is damaged ({getattr(e, 'message', None) or e})"
    except (NotFound, StorageError) as e:
        return Check("manifest intact", False, f"the manifest cannot be read: {e}")
    if problem is None:
        return Check("manifest intact", True, f"{summary.entries} entries, "
                     f"{summary.files} files, matches the archive's checksum")
    return Check("manifest intact", False, (
        f"the manifest of backup {backup.id} cannot be trusted: {problem}; it is the "
        "backup's record of what it holds, so the backup is not restored. Run `volkeeper "
        f"verify {backup.id}` to see whether the archive itself is intact; restore another "
        f"backup (`volkeeper backups --volume {backup.volume}`), or extract the archive "
        f"{backup.key} with plain tar"))


def _not_this_archive(header: dict[str, Any], summary: Any,
                      backup: StoredBackup) -> str | None:
    """Why an intact manifest is not this backup's (None: it is)."""
    for field, value in (("archive_key", backup.key), ("format", backup.format)):
        if header.get(field, value) != value:
            return f"its header's {field} is {header[field]!r}, not {value!r}"
    if backup.checksum and not same(summary.archive_sha256, backup.checksum):
        return (f"it describes an archive with checksum {summary.archive_sha256}, not "
                f"{backup.checksum}")
    if (summary.files, summary.bytes) != (backup.file_count, backup.logical_bytes):
        return (f"it counts {summary.files} files of {size(summary.bytes)}, the catalog "
                f"{backup.file_count} of {size(backup.logical_bytes)}")
    return None


@contextlib.contextmanager
def _lines(backend: Backend, key: str) -> Iterator[Iterable[str]]:
    with backend.open_reader(key) as raw, \
            io.TextIOWrapper(raw, encoding="utf-8", errors="strict") as text:
        yield text


def _check_paths(backend: Backend, backup: StoredBackup, paths: Sequence[str]) -> Check:
    wanted = {_member(p): False for p in paths}
    unlinked: list[str] = []  # selected hard links whose target is not selected
    try:
        for entry in _entries(backend, backup):
            name = _member(entry.path)
            hits = [p for p in wanted if _under(name, p)]
            for p in hits:
                wanted[p] = True
            # tar extracts a hard link by linking to its target, restored earlier from the
            # same archive: a target left out fails the whole extraction
            if hits and entry.type == "hardlink" and entry.link:
                target = _member(entry.link)
                if not any(_under(target, p) for p in wanted):
                    unlinked.append(f"{name[2:]} (a hard link to {target[2:]})")
    except (NotFound, StorageError, IntegrityError) as e:
        return Check("selected paths", False,
                     f"cannot read the manifest to check the paths: {e}")
    missing = [p[2:] for p, found in wanted.items() if not found]
    if missing:
        return Check("selected paths", False, f"not in the backup: {', '.join(missing[:10])}")
    if unlinked:
        return Check("selected paths", False,
                     "hard links to files not selected: " + ", ".join(unlinked[:10])
                     + "; select their targets too (--path TARGET)")
    return Check("selected paths", True, f"{len(wanted)} path(s) found in the backup")


def selected_totals(backend: Backend, backup: StoredBackup,
                    paths: Sequence[str]) -> tuple[int, int]:
    """The regular files below ``paths`` and their bytes (what a selective restore wrote),
    counted as the manifest's summary counts the whole backup."""
    wanted = [_member(p) for p in paths]
    files = size = 0
    for entry in _entries(backend, backup):
        if entry.type == "file" and any(_under(_member(entry.path), p) for p in wanted):
            files, size = files + 1, size + entry.size
    return files, size


def _entries(backend: Backend, backup: StoredBackup) -> Iterator[TarEntry]:
    with backend.open_reader(backup.manifest_key) as raw, \
            io.TextIOWrapper(raw, encoding="utf-8") as text:
        yield from read_manifest(text).entries()


def _member(path: str) -> str:
    """``./a/b`` of a member name or volume-relative path (``a/b``, ``./a/b``, ``/a/b/``)."""
    path = path.removeprefix("./").strip("/")
    return "./" + path if path else "."


def _under(name: str, selected: str) -> bool:
    return name == selected or name.startswith(selected + "/")


def forget(backend: Backend, backup: StoredBackup) -> dict[str, Any]:
    """Delete the archive and its manifest (already gone is fine)."""
    keys = [k for k in (backup.key, backup.manifest_key) if k]
    for k in keys:
        backend.delete(k)
    return {"deleted_objects": keys, "reclaimed_bytes_hint": None}


def copy(src: Backend, dst: Backend, backup: StoredBackup,
         tracker: ProgressTracker) -> CopyOutcome:
    """Copy the archive (its checksum checked on the way) and then its manifest. Copying
    again is no error: an object ``dst`` already holds under the same key is read back
    and kept when it is the same (the archive: its recorded checksum; the manifest: the
    source's bytes), so an earlier or interrupted copy is completed, not refused. Another
    object under either key is never overwritten (Conflict, nothing written)."""
    had_manifest = _held(dst, src, backup.manifest_key, backup)
    try:
        there = dst.stat(backup.key).size
    except NotFound:
        there = None
    if there is None:
        tracker.set_phase("copying archive", bytes_total=src.stat(backup.key).size)
        sha = _copy_object(src, dst, backup.key, tracker,
                           ObjectHash.for_checksum(backup.checksum))
        if not same(sha, backup.checksum):
            dst.delete(backup.key)
            raise IntegrityError(
                f"archive {backup.key} read from {src.display} does not match its checksum "
                f"({sha}, catalog {backup.checksum}); nothing was copied",
                f"verify the backup: volkeeper verify {backup.id}")
    else:
        tracker.set_phase("checking the archive already there", bytes_total=there)
        sha = _hash_object(dst, backup.key, tracker, ObjectHash.for_checksum(backup.checksum))
        if not same(sha, backup.checksum):
            raise _other_object(dst, backup.key, backup)
    if not had_manifest:
        try:
            _copy_object(src, dst, backup.manifest_key, None, ObjectHash())
        except BaseException:
            if there is None:  # only what this copy wrote
                dst.delete(backup.key)
            raise
    return CopyOutcome(key=backup.key, manifest_key=backup.manifest_key, checksum=sha,
                       stored_bytes=dst.stat(backup.key).size)


def _held(dst: Backend, src: Backend, key: str, backup: StoredBackup) -> bool:
    """Whether ``dst`` holds ``src``'s object ``key`` already (False: absent); Conflict
    when it holds another one there."""
    try:
        dst.stat(key)
    except NotFound:
        return False
    if _hash_object(dst, key, None, ObjectHash()) != _hash_object(src, key, None, ObjectHash()):
        raise _other_object(dst, key, backup)
    return True


def _other_object(dst: Backend, key: str, backup: StoredBackup) -> Conflict:
    return Conflict(f"{dst.display} already holds a different object under {key}; it was "
                    "not overwritten and nothing was copied",
                    f"it is not backup {backup.id}'s, maybe a damaged earlier copy: if "
                    "the destination's catalog lists it (volkeeper backups --target NAME), "
                    "verify or forget that backup; otherwise move the object away, then "
                    "copy again")


def _hash_object(backend: Backend, key: str, tracker: ProgressTracker | None,
                 digest: ObjectHash) -> str:
    """Read one object whole; returns its checksum as ``digest`` makes it."""
    with backend.open_reader(key) as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            if tracker is not None:
                tracker.add(len(chunk))
    return digest.checksum()


def _copy_object(src: Backend, dst: Backend, key: str, tracker: ProgressTracker | None,
                 digest: ObjectHash) -> str:
    """Stream one object; returns its checksum as ``digest`` makes it. Nothing is visible
    at ``dst`` on failure."""
    with src.open_reader(key) as reader, dst.open_writer(key) as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            if tracker is not None:
                tracker.add(len(chunk))
        writer.commit()
    return digest.checksum()
