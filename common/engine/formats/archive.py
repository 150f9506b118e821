"""The portable archives (``tar``, ``tar.gz``, ``tar.zst``) behind the ``Format`` seam.

A backup is two objects: the archive under ``volkeeper/<area>/<host>/<volume>/…`` and its
JSON Lines manifest beside it (``manifest_key``). Write ordering: the archive streams into
an upload that becomes visible only at commit, and commit happens only after GNU tar (or
dockerd) reported success and the volume still exists; the manifest is uploaded after the
archive; if that fails the archive is deleted again. So a listing never shows a half
backup, and a failed backup leaves nothing behind.

Restores read under a policy (``restore_policy``): device nodes are refused, and the tar
stream may not hold more file content than the catalog records (plus a slack for
headers), so a tampered archive fails early instead of filling the disk. Verification is
always of the whole archive (checksum, decompression, every member against the manifest):
an archive is one compressed stream, and a sample of it proves nothing about the rest.
Checking the stored objects, forgetting and copying are in ``archive_objects``.

Progress: a backup and a restore count regular files and their content, as a repository
backup does and as their results report them (``common.archive.counting``): a backup
against a scan of the volume run beside it (``sizing``), a restore against the catalog's
totals. A verification counts the stored bytes it reads against the stored object's size.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from common.archive import (
    EXTENSIONS,
    ExtractPolicy,
    ExtractStats,
    ManifestWriter,
    VerifyReport,
    check_format,
    extract_archive,
    manifest_key,
    read_manifest,
    verify_archive,
    write_archive,
)
from common.archive.excludes import NO_EXCLUDES, Excludes, excluded_paths
from common.archive.tarfilter import FilteredTar, filter_tar
from common.config import Settings
from common.docker import DockerHost
from common.engine.access import direct_path, tar_sink, tar_source
from common.engine.formats import archive_objects
from common.engine.records import (
    BackupOutcome,
    Check,
    CopyOutcome,
    Restored,
    StoredBackup,
    VerifyOutcome,
)
from common.engine.sizing import scanning
from common.errors import IntegrityError, InvalidInput, NotFound
from common.formats import SAFETY_FORMAT, Traits, traits_of
from common.progress import FilesOnly, ProgressTracker
from common.storage.base import Backend

if TYPE_CHECKING:  # (the hooks load with a backup's dumps: a restore does without them)
    from common.hooks.dumps import DumpSet

SAFETY_AREA = "volkeeper/safety/"
BACKUP_PHASE = "backing up"
SUBSET_ARCHIVE = ("--subset applies to repository backups only: an archive is one "
                  "compressed stream and is always verified whole")
SUBSET_HINT = "verify without --subset (the whole archive is read)"


def archive_key(host: str, volume: str, created: datetime, job_id: str, fmt: str,
                area: str = "archives") -> str:
    """``volkeeper/<area>/<host>/<volume>/<UTC time>-<job><ext>``; area ``archives`` for
    backups, ``safety`` for the snapshots a replace-restore takes first."""
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    ext = EXTENSIONS[check_format(fmt)]
    return f"volkeeper/{area}/{host}/{volume}/{stamp}-{job_id}{ext}"


class ArchiveFormat:
    """One of the archive formats (the compression is the only difference)."""

    def __init__(self, name: str) -> None:
        self.traits: Traits = traits_of(name)
        self.codec = check_format(name)

    @property
    def name(self) -> str:
        return self.traits.name

    def backup(self, docker: DockerHost, backend: Backend, *, host: str, volume: str,
               job_id: str, tracker: ProgressTracker, settings: Settings,
               area: str = "archives", excludes: Excludes = NO_EXCLUDES,
               dumps: DumpSet | None = None) -> BackupOutcome:
        info = docker.volume(volume)
        created = datetime.now(UTC)
        key = archive_key(host, volume, created, job_id, self.name, area)
        mkey = manifest_key(key)
        path = None if dumps else direct_path(docker, volume, settings)
        # direct: GNU tar leaves out what a walk found; docker-api: its stream is filtered
        left_out = sorted(excluded_paths(path, excludes)) if path is not None else []
        header: dict[str, Any] = {
            "volume": volume, "host": host, "created_at": created.isoformat(),
            "format": self.name, "archive_key": key, "driver": info.driver, "job_id": job_id}
        if excludes:
            header["excludes"] = list(excludes.patterns)
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
            manifest = ManifestWriter(spool, header)
            # regular files and their content, as a repository backup counts them
            # (``common.archive.counting``), against a scan beside it (or Docker's measure)
            tracker.set_phase(BACKUP_PHASE, bytes_total=info.size_bytes, estimated=True)
            writer = backend.open_writer(key)
            filtered: FilteredTar | None = None
            try:
                with scanning(path, lambda size: tracker.expect(
                        BACKUP_PHASE, size.bytes, size.files)), \
                        (dumps.tar_stream() if dumps else
                         tar_source(docker, volume, settings, left_out)) as raw:
                    if excludes and path is None:
                        filtered = filter_tar(raw, excludes)
                    stats = write_archive(raw if filtered is None else cast(BinaryIO, filtered),
                                          writer, self.codec, tracker,
                                          manifest=manifest, level=settings.zstd_level,
                                          name=key)
                if filtered is not None:
                    left_out = filtered.left_out
                docker.volume(volume)  # vanished while we read it → NotFound, no commit
                stored = writer.commit()
            except BaseException:
                writer.abort()
                raise
            try:  # a job stopped here (cancelled) leaves no archive without manifest
                tracker.set_phase("writing manifest")
                spool.seek(0)
                with backend.open_writer(mkey) as mw:
                    while chunk := spool.read(1 << 20):
                        mw.write(chunk.encode("utf-8"))
                    mw.commit()
            except BaseException:
                backend.delete(key)
                raise
        return BackupOutcome(
            key=key, manifest_key=mkey, format=self.name, stored_bytes=stored.size,
            logical_bytes=stats.file_bytes, file_count=stats.files,
            checksum=stats.archive_sha256, excludes=excludes.patterns,
            excluded_entries=len(left_out))

    def safety_snapshot(self, docker: DockerHost, backend: Backend, *, host: str,
                        volume: str, job_id: str, tracker: ProgressTracker,
                        settings: Settings) -> BackupOutcome:
        return safety_snapshot(docker, backend, host=host, volume=volume, job_id=job_id,
                               tracker=tracker, settings=settings)

    def check_stored(self, backend: Backend, backup: StoredBackup, settings: Settings,
                     paths: Sequence[str] | None) -> list[Check]:
        return archive_objects.check_stored(backend, backup, paths)

    def selected_totals(self, backend: Backend, backup: StoredBackup, settings: Settings,
                        paths: Sequence[str]) -> tuple[int, int]:
        return archive_objects.selected_totals(backend, backup, paths)

    def read_files(self, backend: Backend, backup: StoredBackup, settings: Settings,
                   directory: str) -> Iterator[tuple[str, BinaryIO]]:
        from common.engine.formats import members  # (it reads repository snapshots too)

        return members.archive_files(backend, backup, directory)

    def restore(self, docker: DockerHost, backend: Backend, backup: StoredBackup, *,
                volume: str, tracker: ProgressTracker, settings: Settings,
                paths: list[str] | None = None,
                then: Callable[..., None] | None = None) -> Restored:
        # the regular files it writes and their content, as the result counts them
        files, size = ((backup.file_count, backup.logical_bytes) if not paths
                       else archive_objects.selected_totals(backend, backup, paths))
        tracker.set_phase("restoring", bytes_total=size, files_total=files)
        stats = extract_into(docker, backend, volume, settings, tracker, key=backup.key,
                             fmt=backup.format, checksum=backup.checksum, paths=paths,
                             policy=restore_policy(backup, settings))
        return Restored(bytes=size, files=files, entries=stats.entries)

    def verify(self, backend: Backend, backup: StoredBackup, tracker: ProgressTracker,
               settings: Settings, *, read_data: bool = False,
               subset_percent: float | None = None, seed: int | None = None) -> VerifyOutcome:
        if subset_percent is not None:
            raise InvalidInput(SUBSET_ARCHIVE, SUBSET_HINT)
        return _verify(backend, backup, tracker, self.codec)

    def compare(self, docker: DockerHost, backend: Backend, backup: StoredBackup,
                volume: str, settings: Settings, tracker: ProgressTracker) -> VerifyReport:
        # the volume's regular files and their content, as the backup counted them
        tracker.set_phase("comparing", bytes_total=backup.logical_bytes,
                          files_total=backup.file_count)
        with backend.open_reader(backup.manifest_key) as raw, \
                io.TextIOWrapper(raw, encoding="utf-8") as text, \
                tar_source(docker, volume, settings) as stream:
            # entries only: the archive-level checksum belongs to the stored object, not
            # to this fresh tar of the volume
            manifest = read_manifest(text)
            return verify_archive(stream, "tar", manifest.entries(), tracker,
                                  name=f"volume {volume}", digest=manifest.digest,
                                  content_progress=True)

    def forget(self, backend: Backend, backup: StoredBackup,
               settings: Settings) -> dict[str, Any]:
        return archive_objects.forget(backend, backup)

    def copy(self, src: Backend, dst: Backend, backup: StoredBackup, *,
             src_settings: Settings, dst_settings: Settings,
             tracker: ProgressTracker) -> CopyOutcome:
        return archive_objects.copy(src, dst, backup, tracker)

    def apply_labels(self, backend: Backend, backup: StoredBackup, settings: Settings, *,
                     tags: Sequence[str], pinned: bool) -> bool:
        return False  # an archive's labels live in the catalog only

    def list_dir(self, backend: Backend, backup: StoredBackup, settings: Settings,
                 path: str) -> dict[str, Any]:
        from common.engine import browse  # (it lists repository snapshots too)

        return browse.archive_listing(backend, backup, path)


def safety_snapshot(docker: DockerHost, backend: Backend, *, host: str, volume: str,
                    job_id: str, tracker: ProgressTracker, settings: Settings
                    ) -> BackupOutcome:
    """A ``tar.zst`` of the volume under ``volkeeper/safety/``, whatever archive format the
    backup being restored has: the user chose a portable format, so the previous content
    stays restorable with plain tar (a repository backup's safety snapshot is a snapshot
    in its repository instead: ``repository.RepositoryFormat.safety_snapshot``)."""
    tracker.set_phase("safety snapshot")
    return ArchiveFormat(SAFETY_FORMAT).backup(docker, backend, host=host, volume=volume,
                                               job_id=job_id, tracker=tracker,
                                               settings=settings, area="safety")


def restore_policy(backup: StoredBackup, settings: Settings) -> ExtractPolicy:
    """What a restore of ``backup`` accepts: no device nodes (unless
    ``VOLKEEPER_RESTORE_DEVICE_NODES`` is set, or from the safety snapshots of
    replace-restores, which hold a volume's own previous content), and no more content than
    the catalog records for it (a tampered archive fails before it fills the disk)."""
    return ExtractPolicy(allow_devices=settings.restore_device_nodes
                         or backup.kind == "safety" or backup.key.startswith(SAFETY_AREA),
                         content_bytes=backup.logical_bytes, files=backup.file_count)


class _Counted:
    """A reader that counts the stored bytes read into a tracker."""

    def __init__(self, raw: BinaryIO, tracker: ProgressTracker) -> None:
        self.raw, self.tracker = raw, tracker

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.tracker.add(len(data))
        return data

    def close(self) -> None:
        self.raw.close()


def counted(raw: BinaryIO, tracker: ProgressTracker) -> BinaryIO:
    return cast(BinaryIO, _Counted(raw, tracker))


def extract_into(docker: DockerHost, backend: Backend, volume: str, settings: Settings,
                 tracker: ProgressTracker, *, key: str, fmt: str, checksum: str,
                 policy: ExtractPolicy, paths: list[str] | None = None) -> ExtractStats:
    """Stream the archive ``key`` into the volume (only ``paths`` when given), checking its
    sha256; raises IntegrityError when it does not match or the archive is damaged, and
    ``Refused`` (an IntegrityError) for what ``policy`` does not accept. Progress counts
    the regular files written and their content (``common.archive.counting``)."""
    names = member_names(paths)
    with backend.open_reader(key) as reader, \
            tar_sink(docker, volume, settings, names) as sink:
        return extract_archive(reader, check_format(fmt), sink, tracker,
                               expected_sha256=checksum, name=key, policy=policy,
                               paths=names)


def member_names(paths: list[str] | None) -> list[str] | None:
    """Archive member names (``./a/b``) of volume-relative paths."""
    return ["./" + p.strip("/") for p in paths] if paths else None


def _verify(backend: Backend, backup: StoredBackup, tracker: ProgressTracker,
            codec: Any) -> VerifyOutcome:
    out = VerifyOutcome(ok=True, backup_id=backup.id)

    def damaged(obj: str, problem: str) -> None:
        out.ok = False
        if obj not in out.damaged_objects:
            out.damaged_objects.append(obj)
        out.problems.append(problem)
        out.problem_count += 1

    tracker.set_phase("checking objects")
    try:
        size = backend.stat(backup.key).size
    except NotFound:
        damaged(backup.key, f"archive object {backup.key} is missing from the target")
        size = None
    try:
        manifest_text = backend.get_bytes(backup.manifest_key).decode("utf-8")
    except NotFound:
        damaged(backup.manifest_key, f"manifest {backup.manifest_key} is missing")
        manifest_text = None
    except UnicodeDecodeError:
        damaged(backup.manifest_key, f"manifest {backup.manifest_key} is not valid UTF-8")
        manifest_text = None
    if size is None:
        return out
    tracker.set_phase("verifying", bytes_total=size, files_total=_files(manifest_text))
    entries: Any = None  # a damaged manifest: the archive is checked against its sha256
    if manifest_text is not None:
        try:  # read through once (it is in memory), so its damage is blamed on it
            whole = read_manifest(io.StringIO(manifest_text))
            for _ in whole.entries():
                pass
            for field, value in (("archive_key", backup.key), ("format", backup.format)):
                if whole.header.get(field, value) != value:
                    raise ValueError(f"its header's {field} {whole.header[field]!r} is not "
                                     f"the catalog's {value!r}")
            entries = read_manifest(io.StringIO(manifest_text))
        except (IntegrityError, ValueError, KeyError, TypeError) as e:
            damaged(backup.manifest_key, f"manifest {backup.manifest_key} unreadable: {e}")
    with backend.open_reader(backup.key) as reader:
        report = verify_archive(counted(reader, tracker), codec, entries,
                                FilesOnly(tracker), expected_sha256=backup.checksum,
                                name=backup.key)
    out.entries_checked = report.entries_checked
    out.archive_sha256 = report.archive_sha256
    if not report.ok:
        # an archive whose sha256 is the catalog's is intact: what differs is the manifest
        intact = bool(backup.checksum) and report.archive_sha256 == backup.checksum
        blamed = backup.manifest_key if intact else backup.key
        for p in report.problems:
            damaged(blamed, p)
        out.problem_count += report.problem_count - len(report.problems)
    return out


def _files(manifest_text: str | None) -> int | None:
    """The regular files a manifest's summary line counts (None when it has none)."""
    if not manifest_text:
        return None
    try:
        last = json.loads(manifest_text.rstrip("\n").rsplit("\n", 1)[-1])
    except ValueError:
        return None
    n = last.get("files") if isinstance(last, dict) and last.get("kind") == "summary" \
        else None
    return n if isinstance(n, int) else None
