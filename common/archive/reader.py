"""Reading an archive back: restoring it into a tar consumer, or verifying it.

A prefetch thread reads the stored object and hashes it (the archive checksum) while the
calling thread decompresses and hands the tar stream on, so download, hashing,
decompression and ``tar -x`` overlap. The tar stream is also run through the scanner,
which catches an archive that decompresses cleanly but stops early (truncation).

Restore streams into the sink as it goes: when a mismatch is found at the end the sink has
already received data, so the caller extracts into a fresh place and discards it on error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

import zstandard

from common.archive.checksum import Algorithm, ObjectHash, algorithm_of, same
from common.archive.codec import Format, check_format, open_decompressed
from common.archive.counting import ContentProgress
from common.archive.manifest import Manifest
from common.archive.tarscan import Digest, TarAmbiguityError, TarEntry, TarScanner
from common.errors import IntegrityError, Refused
from common.progress import ProgressTracker

CHUNK = 1 << 20
_DEPTH = 4
MAX_PROBLEMS = 1000
LOOKAHEAD = 10000


class Writable(Protocol):
    def write(self, data: bytes | memoryview) -> object: ...


class _HashingPrefetcher:
    """Reads ``raw`` ahead on a thread, hashing every byte; ``read(n)`` serves the bytes."""

    def __init__(self, raw: BinaryIO, hashing: bool, algorithm: Algorithm) -> None:
        self.raw = raw
        self.hashing = hashing
        self.digest = ObjectHash(algorithm)
        self.size = 0
        self._q: queue.Queue[bytes | BaseException] = queue.Queue(_DEPTH)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="archive-read", daemon=True)
        self._thread.start()

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self.raw.read(CHUNK)
                if data and self.hashing:
                    self.digest.update(data)
                if data:
                    self.size += len(data)
                if not self._put(data) or not data:
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread
            self._put(e)

    def read(self, n: int = -1) -> bytes:
        while not self._buf:
            if self._eof:
                return b""
            item = self._q.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if not item:
                self._eof = True
                return b""
            if n < 0 or n >= len(item):
                return item  # the common case: hand the chunk over without a copy
            self._buf = memoryview(item)
        take = len(self._buf) if n < 0 else min(n, len(self._buf))
        out = bytes(self._buf[:take])
        self._buf = self._buf[take:]
        return out

    def drain(self) -> None:
        """Read (and hash) whatever is left of the object."""
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


#: Tar stream bytes allowed beyond the catalogued file content: headers, names, pax
#: records and padding (about 1.5 KiB per member), per catalogued regular file …
META_PER_FILE = 16 * 1024
#: … plus this much for directories, symlinks and hardlinks beyond that
META_SLACK = 256 * 1024 * 1024
DEVICE_HINT = ("nothing was kept; if the device nodes are genuine, set "
               "VOLKEEPER_RESTORE_DEVICE_NODES=true on the workers and restore again")
_BUDGET_HINT = ("the archive holds more than its catalog entry says: it was tampered with "
                "or replaced; restore another backup (a genuine archive of a volume of "
                "mostly directories or hardlinks can be restored with plain tar, see README)")


@dataclass(frozen=True)
class ExtractPolicy:
    """What a restore accepts: device nodes (char/block) or not, and a size budget from
    the catalog — regular-file content may not exceed ``content_bytes`` (the backup's
    logical size) and the whole tar stream not ``content_bytes + META_SLACK +
    META_PER_FILE * files``. None disables a bound."""

    allow_devices: bool = False
    content_bytes: int | None = None
    files: int = 0

    def start(self, name: str) -> _PolicyCheck:
        return _PolicyCheck(self, name)


class _PolicyCheck:
    def __init__(self, policy: ExtractPolicy, name: str) -> None:
        self.policy = policy
        self.name = name
        self.content = 0
        self.limit = None if policy.content_bytes is None else \
            policy.content_bytes + META_SLACK + META_PER_FILE * max(policy.files, 0)

    def header(self, entry: TarEntry) -> None:
        """Check one member as its header goes by (a ``TarScanner`` ``on_start`` hook)."""
        if entry.type in ("char", "block") and not self.policy.allow_devices:
            raise Refused(
                f"refused member {entry.path!r} of archive {self.name}: a {entry.type} device "
                f"node ({entry.devmajor}:{entry.devminor}); restores do not create device "
                "nodes", DEVICE_HINT)
        if entry.type == "file" and self.policy.content_bytes is not None:
            self.content += entry.size
            if self.content > self.policy.content_bytes:
                raise Refused(
                    f"refused member {entry.path!r} of archive {self.name}: the archive's "
                    f"files hold more than the {self.policy.content_bytes} bytes its "
                    "catalog entry records", _BUDGET_HINT)

    def stream(self, total: int) -> None:
        if self.limit is not None and total > self.limit:
            raise Refused(f"refused archive {self.name}: its tar stream exceeds "
                          f"{self.limit} bytes, far more than the "
                          f"{self.policy.content_bytes} bytes of content its catalog entry "
                          "records", _BUDGET_HINT)


class CheckedSink:
    """Passes a tar stream on to ``sink`` after checking it against ``policy`` (for tar
    streams volkeeper writes itself, e.g. a repo snapshot restored through Docker's
    archive API): a refused member raises before the bytes holding it are passed on."""

    def __init__(self, sink: BinaryIO, policy: ExtractPolicy, name: str) -> None:
        self.sink = sink
        self.check = policy.start(name)
        self.scanner = TarScanner(lambda _e: None, hash_content=False,
                                  on_start=self.check.header)
        self.total = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.total += len(data)
        self.check.stream(self.total)
        self.scanner.feed(data)
        self.sink.write(data)
        return len(data)


@dataclass
class ExtractStats:
    """What one archive read produced."""

    stored_bytes: int
    tar_bytes: int
    archive_sha256: str | None
    entries: int
    seconds: float


def _stream_tar(
    reader: BinaryIO, fmt: Format, name: str, scanner: TarScanner,
    sink: Writable | None, tracker: ProgressTracker, expected_sha256: str | None,
    force_hash: bool = False, budget: _PolicyCheck | None = None,
    algorithm: Algorithm = "sha256", tar_bytes_progress: bool = True,
) -> ExtractStats:
    """Decompress ``reader`` through ``scanner`` (and into ``sink``); check the checksum
    (hashed with ``expected_sha256``'s algorithm, else with ``algorithm``).
    ``tar_bytes_progress``: ``tracker`` counts the tar stream's bytes (False: the
    scanner's hooks count what they count)."""
    started = time.monotonic()
    pre = _HashingPrefetcher(reader, hashing=expected_sha256 is not None or force_hash,
                             algorithm=algorithm_of(expected_sha256) if expected_sha256
                             else algorithm)
    tar_bytes = 0
    # one buffer for the whole stream where the decompressor fills it (zstd): scanner and
    # sink are done with each piece before the next is read
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        source = open_decompressed(pre, fmt, name, CHUNK)  # type: ignore[arg-type]
        readinto = getattr(source, "readinto", None) if fmt == "tar.zst" else None
        while True:
            try:
                data: bytes | memoryview = view[:readinto(buf)] if readinto is not None \
                    else source.read(CHUNK)
            except zstandard.ZstdError as e:
                raise IntegrityError(f"archive {name} is corrupt: {e}",
                                     "the stored object is damaged; use another backup") from e
            if not data:
                break
            if budget is not None:
                budget.stream(tar_bytes + len(data))
            try:
                scanner.feed(data)
            except Refused:
                raise
            except TarAmbiguityError as e:
                raise Refused(f"refused archive {name}: {e.message}", e.hint) from e
            except IntegrityError as e:
                raise IntegrityError(f"archive {name} is corrupt: {e.message}",
                                     "the stored object is damaged; use another backup") from e
            if sink is not None:
                sink.write(data)
            tar_bytes += len(data)
            if tar_bytes_progress:
                tracker.add(len(data), 0)
        pre.drain()
    finally:
        pre.close()
    actual = pre.digest.checksum() if pre.hashing else None
    if expected_sha256 is not None and not same(actual, expected_sha256):
        raise IntegrityError(
            f"archive {name} does not match its checksum ({pre.digest.algorithm} {actual}, "
            f"expected {expected_sha256})",
            "the stored object was damaged or replaced; use another backup")
    try:
        scanner.close()
    except TarAmbiguityError as e:
        raise Refused(f"refused archive {name}: {e.message}", e.hint) from e
    except IntegrityError as e:
        raise IntegrityError(f"archive {name} is truncated: {e.message}",
                             "the stored object is incomplete; use another backup") from e
    return ExtractStats(pre.size, tar_bytes, actual, scanner.members,
                        time.monotonic() - started)


def extract_archive(
    reader: BinaryIO,
    fmt: Format,
    sink: Writable,
    tracker: ProgressTracker,
    *,
    expected_sha256: str | None = None,
    name: str = "archive",
    policy: ExtractPolicy | None = None,
    paths: Sequence[str] | None = None,
) -> ExtractStats:
    """Stream the tar inside a stored archive into ``sink`` (``gnutar.extract_stream``'s
    pipe, Docker's put_archive …).

    Raises IntegrityError naming ``name`` when the stored bytes do not match
    ``expected_sha256``, cannot be decompressed, or hold an incomplete tar archive.
    Without ``expected_sha256`` no sha256 is computed (about 15% faster; zstd and gzip
    still check their own frame checksums) and ``archive_sha256`` is None.
    ``tracker`` counts regular files and their content bytes (``counting``; only those
    below ``paths``, member names, when given: what the sink extracts). ``policy``
    refuses device nodes and bounds what may be written (raising ``Refused`` before the
    offending member's bytes reach ``sink``).
    """
    fmt = check_format(fmt)
    check = policy.start(name) if policy is not None else None
    counts = ContentProgress(tracker, paths=paths,
                             then_start=check.header if check is not None else None)
    scanner = TarScanner(counts.on_entry, hash_content=False, on_start=counts.on_start)
    return _stream_tar(reader, fmt, name, scanner, sink, tracker, expected_sha256,
                       budget=check, tar_bytes_progress=False)


@dataclass
class VerifyReport:
    """The outcome of comparing an archive with its manifest."""

    ok: bool
    entries_checked: int
    archive_sha256: str | None
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0


_FIELDS = ("type", "size", "mode", "uid", "gid", "sha256", "blake3", "link", "xattrs",
           "sparse")


def _differences(actual: TarEntry, expected: TarEntry) -> list[str]:
    out = [f"{f}: archive has {getattr(actual, f)!r}, manifest says {getattr(expected, f)!r}"
           for f in _FIELDS if getattr(actual, f) != getattr(expected, f)]
    if abs(actual.mtime - expected.mtime) > 1e-6:
        out.append(f"mtime: archive has {actual.mtime}, manifest says {expected.mtime}")
    return out


def verify_archive(
    reader: BinaryIO,
    fmt: Format,
    manifest: Manifest | Iterable[TarEntry] | None,
    tracker: ProgressTracker,
    *,
    expected_sha256: str | None = None,
    name: str = "archive",
    digest: Digest | None = None,
    content_progress: bool = False,
) -> VerifyReport:
    """Decompress and parse an archive and compare every member with the manifest
    (``None``: no manifest to compare with — a damaged one —, the archive is only
    decompressed, parsed and checked against ``expected_sha256``).

    Never raises for damage: corruption, checksum mismatches, missing, extra or
    different members are listed in the report (the first ``MAX_PROBLEMS`` of them).
    When ``manifest`` is a ``Manifest`` its summary checksum is checked too, and file
    contents are hashed with its digest; otherwise with ``digest`` (default sha256, what
    version 1 manifests carry).

    ``tracker`` counts the regular files and the stream's bytes (a stored archive's,
    against its object size); with ``content_progress`` the files' content instead of the
    stream's bytes (``counting``: a volume's fresh tar compared with the manifest, as a
    restore counts).
    """
    fmt = check_format(fmt)
    counts = ContentProgress(tracker) if content_progress else None
    report = VerifyReport(ok=True, entries_checked=0, archive_sha256=None)
    def expected_entries() -> Iterator[TarEntry]:
        try:
            yield from (manifest.entries() if isinstance(manifest, Manifest)
                        else iter(manifest or ()))
        except IntegrityError as e:  # the manifest's damage, not the archive's
            problem(f"manifest: {e.message}")

    expected_iter = expected_entries()

    def problem(text: str) -> None:
        report.ok = False
        report.problem_count += 1
        if len(report.problems) < MAX_PROBLEMS:
            report.problems.append(text)

    # Members are compared in order; a bounded window of manifest entries that were
    # skipped over absorbs members missing from (or added to) the archive.
    pending: dict[str, TarEntry] = {}

    def lookup(path: str) -> TarEntry | None:
        if path in pending:
            return pending.pop(path)
        while len(pending) < LOOKAHEAD:
            candidate = next(expected_iter, None)
            if candidate is None or candidate.path == path:
                return candidate
            pending[candidate.path] = candidate
        return None

    files = [0, 0]  # regular files, their bytes: what the manifest's summary counts

    def on_entry(entry: TarEntry) -> None:
        if counts is not None:
            counts.on_entry(entry)
        elif entry.type == "file":  # what a user counts: not the root or other entries
            tracker.add(0, 1)
        report.entries_checked += 1
        if entry.type == "file":
            files[0] += 1
            files[1] += entry.size
        if manifest is None:
            return
        expected = lookup(entry.path)
        if expected is None:
            problem(f"{entry.path}: in the archive but not in the manifest")
        else:
            for diff in _differences(entry, expected):
                problem(f"{entry.path}: {diff}")

    if digest is None:
        digest = manifest.digest if isinstance(manifest, Manifest) else "sha256"
    scanner = TarScanner(on_entry, hash_content=True, digest=digest,
                         on_start=counts.on_start if counts is not None else None)
    try:  # without an expected checksum: hashed as the manifest's era did (v1: sha256)
        stats = _stream_tar(reader, fmt, name, scanner, None, tracker, expected_sha256,
                            force_hash=True, algorithm="blake3" if digest == "blake3"
                            else "sha256", tar_bytes_progress=counts is None)
        report.archive_sha256 = stats.archive_sha256
    except IntegrityError as e:
        problem(str(e))
        return report
    for missing in [*pending.values(), *expected_iter]:
        problem(f"{missing.path}: in the manifest but not in the archive")
    if isinstance(manifest, Manifest) and manifest.read_to_end:
        summary = manifest.summary
        if summary.archive_sha256 != report.archive_sha256:
            problem(f"archive checksum {report.archive_sha256} differs from the manifest's "
                    f"{summary.archive_sha256}")
        actual = (report.entries_checked, files[0], files[1], stats.stored_bytes)
        told = (summary.entries, summary.files, summary.bytes, summary.archive_size)
        if actual != told:
            problem(f"the manifest's summary (entries, files, bytes, archive size) {told} "
                    f"differs from the archive's {actual}")
    return report
