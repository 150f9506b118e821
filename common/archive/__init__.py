"""Portable archives: a volume as one ``.tar``, ``.tar.gz`` or ``.tar.zst`` object plus a
JSON Lines manifest beside it (``<archive key>.manifest.jsonl``).

The archives are ordinary POSIX (pax) tar files made by GNU tar, so they restore with plain
``tar`` when volkeeper is gone. Concepts:

- a *tar stream* is the uncompressed archive as bytes; it comes from ``gnutar.create_stream``
  (a directory) or from Docker's archive API, and goes to ``gnutar.extract_stream`` or to
  Docker's put_archive;
- ``tarscan`` parses a tar stream incrementally and hashes each member's logical content,
  refusing (``TarAmbiguityError``) whatever GNU tar or Docker could read differently;
- ``writer.write_archive`` compresses a tar stream into a storage object while writing the
  manifest; ``reader.extract_archive`` and ``reader.verify_archive`` read it back;
- ``manifest`` writes and reads manifests as streams;
- ``excludes`` decides which paths a backup leaves out (globs over volume-relative paths);
  ``tarfilter`` drops them from a tar stream GNU tar did not make.
"""

from common.archive.codec import EXTENSIONS, FORMATS, Format, check_format
from common.archive.manifest import (
    Manifest,
    ManifestSummary,
    ManifestWriter,
    manifest_key,
    read_manifest,
)
from common.archive.reader import (
    ExtractPolicy,
    ExtractStats,
    VerifyReport,
    extract_archive,
    verify_archive,
)
from common.archive.tarscan import TarAmbiguityError, TarEntry, TarFormatError, TarScanner
from common.archive.writer import ArchiveStats, write_archive

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "ArchiveStats",
    "ExtractPolicy",
    "ExtractStats",
    "Format",
    "Manifest",
    "ManifestSummary",
    "ManifestWriter",
    "TarAmbiguityError",
    "TarEntry",
    "TarFormatError",
    "TarScanner",
    "VerifyReport",
    "check_format",
    "extract_archive",
    "manifest_key",
    "read_manifest",
    "verify_archive",
    "write_archive",
]
