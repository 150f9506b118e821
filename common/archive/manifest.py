"""Archive manifests: a JSON Lines description of every member of an archive.

Line 1 is the header ``{"kind": "volkeeper-manifest", "version": 2, "digest": "blake3",
...meta}`` (the caller adds volume, host, created_at, format, archive_key). Then one line
per tar member::

    {"path": "./a/b", "type": "file", "size": 3, "mode": 420, "uid": 0, "gid": 0,
     "mtime": 1700000000.5, "blake3": "…", "link": null, "sparse": false,
     "xattrs": {"user.k": "<base64>"}}          # xattrs only when there are some

The content digest of a file is named by the header's ``digest`` and is the key of its
field: ``blake3`` (version 2, what ``b3sum`` prints; several times cheaper than sha256) or
``sha256`` (version 1 manifests, which have no ``digest``: they are still read and
verified, and ``ManifestWriter(..., digest="sha256")`` still writes them).

and the last line is the summary ``{"kind": "summary", "entries": n, "files": n,
"bytes": logical bytes of regular files, "archive_sha256": hex, "archive_size": n,
"lines_sha256": hex}``; ``lines_sha256`` (absent from older manifests) is the sha256 of
every line before the summary, so a damaged header or entry is found even where it would
still parse. Readers refuse entry and summary lines with missing or unknown keys.
Manifests are written and read as streams: no list of all entries is ever built.
The manifest object is stored beside the archive under ``manifest_key(archive_key)``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TextIO

from common.archive.tarscan import Digest, TarEntry, check_digest
from common.errors import IntegrityError

MANIFEST_KIND = "volkeeper-manifest"
MANIFEST_VERSION = 2
#: The manifest version of each content digest (version 1 knew only sha256).
_VERSIONS: dict[Digest, int] = {"sha256": 1, "blake3": 2}
MANIFEST_SUFFIX = ".manifest.jsonl"


def manifest_key(archive_key: str) -> str:
    """The storage key of the manifest that describes ``archive_key``."""
    return archive_key + MANIFEST_SUFFIX


def entry_to_dict(entry: TarEntry, digest: Digest = "sha256") -> dict[str, Any]:
    """The manifest line (as a dict) of one member, in a manifest of ``digest``."""
    out: dict[str, Any] = {
        "path": entry.path,
        "type": entry.type,
        "size": entry.size,
        "mode": entry.mode,
        "uid": entry.uid,
        "gid": entry.gid,
        "mtime": entry.mtime,
        digest: getattr(entry, digest),
        "link": entry.link,
        "sparse": entry.sparse,
    }
    if entry.xattrs:
        out["xattrs"] = {k: base64.b64encode(v).decode() for k, v in sorted(entry.xattrs.items())}
    if entry.type in ("char", "block"):
        out["dev"] = [entry.devmajor, entry.devminor]
    return out


_BASE_KEYS = frozenset(("path", "type", "size", "mode", "uid", "gid", "mtime", "link",
                        "sparse"))
_KEYS: dict[Digest, frozenset[str]] = {d: _BASE_KEYS | {d} for d in _VERSIONS}
_OPTIONAL_KEYS = frozenset(("xattrs", "dev"))


def entry_from_dict(d: dict[str, Any], digest: Digest = "sha256") -> TarEntry:
    """The member described by one manifest line of a manifest whose files carry
    ``digest``. Raises ValueError for a line that lacks a key or has one no manifest
    writer writes (a damaged key name would otherwise read as a default)."""
    keys, want = d.keys(), _KEYS[digest]
    if not keys >= want or not keys <= want | _OPTIONAL_KEYS:
        raise ValueError(f"keys {sorted(keys ^ want - _OPTIONAL_KEYS)} are unexpected or "
                         "missing")
    dev = d.get("dev") or [0, 0]
    return TarEntry(
        path=d["path"],
        type=d["type"],
        size=int(d["size"]),
        mode=int(d["mode"]),
        uid=int(d["uid"]),
        gid=int(d["gid"]),
        mtime=float(d["mtime"]),
        link=d.get("link"),
        sha256=d.get("sha256"),
        blake3=d.get("blake3"),
        xattrs={k: base64.b64decode(v) for k, v in (d.get("xattrs") or {}).items()},
        sparse=bool(d.get("sparse", False)),
        devmajor=int(dev[0]),
        devminor=int(dev[1]),
    )


@dataclass
class ManifestSummary:
    """Totals of an archive, the manifest's last line."""

    entries: int
    files: int
    bytes: int
    archive_sha256: str
    archive_size: int
    lines_sha256: str | None = None  # sha256 of every line before this one (None: older)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "summary", "entries": self.entries, "files": self.files,
            "bytes": self.bytes, "archive_sha256": self.archive_sha256,
            "archive_size": self.archive_size}
        if self.lines_sha256 is not None:
            out["lines_sha256"] = self.lines_sha256
        return out


_SUMMARY_KEYS = frozenset(("kind", "entries", "files", "bytes", "archive_sha256",
                           "archive_size"))
#: how the entry lines ``ManifestWriter`` writes start (compact JSON, the path first)
_ENTRY_PREFIX = '{"path":'


def _json_line(line: str) -> object:
    """A manifest line parsed (None: blank); IntegrityError when it is not JSON."""
    if not line.strip():
        return None
    try:
        return json.loads(line)
    except ValueError as e:
        raise IntegrityError(f"manifest line is not valid JSON: {e}",
                             "the manifest object is damaged") from None


def _summary_from_dict(obj: dict[str, Any]) -> ManifestSummary:
    keys = obj.keys()
    if not keys >= _SUMMARY_KEYS or not keys <= _SUMMARY_KEYS | {"lines_sha256"}:
        raise ValueError(f"summary keys {sorted(keys)} are not a summary's")
    lines = obj.get("lines_sha256")
    return ManifestSummary(int(obj["entries"]), int(obj["files"]), int(obj["bytes"]),
                           str(obj["archive_sha256"]), int(obj["archive_size"]),
                           None if lines is None else str(lines))


class ManifestWriter:
    """Write a manifest line by line to a text sink (the header at construction).
    ``digest``: the content digest its files carry (``TarScanner(digest=...)`` computes
    it); ``sha256`` writes a version 1 manifest."""

    def __init__(self, sink: TextIO, meta: dict[str, Any] | None = None,
                 digest: Digest = "blake3") -> None:
        self.sink = sink
        self.digest = check_digest(digest)
        self.entries = 0
        self.files = 0
        self.bytes = 0
        self._hash = hashlib.sha256()
        header: dict[str, Any] = {"kind": MANIFEST_KIND, "version": _VERSIONS[digest]}
        if digest != "sha256":
            header["digest"] = digest
        self._line(header | (meta or {}))

    def _write(self, line: str) -> None:
        self._hash.update(line.encode())
        self.sink.write(line)

    def _line(self, obj: dict[str, Any]) -> None:
        self._write(json.dumps(obj, separators=(",", ":")) + "\n")

    def entry(self, entry: TarEntry) -> None:
        """Record one member."""
        self.entries += 1
        if entry.type == "file":
            self.files += 1
            self.bytes += entry.size
        if entry.xattrs or entry.type in ("char", "block"):
            self._line(entry_to_dict(entry, self.digest))
        else:
            self._write(entry_line(entry, self.digest))


    def summary(self, archive_sha256: str, archive_size: int) -> ManifestSummary:
        """Write the closing summary line and return it."""
        summ = ManifestSummary(self.entries, self.files, self.bytes, archive_sha256,
                               archive_size, self._hash.hexdigest())
        self.sink.write(json.dumps(summ.to_dict(), separators=(",", ":")) + "\n")
        self.sink.flush()
        return summ


def entry_line(entry: TarEntry, digest: Digest = "sha256") -> str:
    """The manifest line of a member without xattrs or device numbers, formatted directly:
    byte for byte what ``json.dumps(entry_to_dict(entry), separators=(",", ":"))`` gives,
    at a fraction of the cost (it runs once per file of every backup)."""
    dumps = json.dumps
    value = getattr(entry, digest)
    sha = "null" if value is None else f'"{value}"'
    link = "null" if entry.link is None else dumps(entry.link)
    return (f'{{"path":{dumps(entry.path)},"type":"{entry.type}","size":{entry.size},'
            f'"mode":{entry.mode},"uid":{entry.uid},"gid":{entry.gid},'
            f'"mtime":{float(entry.mtime)!r},"{digest}":{sha},"link":{link},'
            f'"sparse":{"true" if entry.sparse else "false"}}}\n')


class Manifest:
    """A streaming reader: ``header`` at once, ``entries()`` lazily, then ``summary``.

    ``summary`` is known once ``entries()`` has been read to the end (asking for it first
    reads through the entries). Raises IntegrityError on a malformed or truncated manifest.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._hash = hashlib.sha256()
        self._last = ""  # the line read last, hashed once the next one is read
        self._summary: ManifestSummary | None = None
        first = self._next_obj()
        if first is None or first.get("kind") != MANIFEST_KIND:
            raise IntegrityError("not a volkeeper manifest (bad first line)",
                                 "the manifest object is damaged or belongs to something else")
        if int(first.get("version", 0)) > MANIFEST_VERSION:
            raise IntegrityError(f"manifest version {first.get('version')} is too new",
                                 "upgrade volkeeper to read this backup's manifest")
        digest = first.get("digest", "sha256")
        if digest not in _VERSIONS:
            raise IntegrityError(f"manifest names an unknown content digest {digest!r}",
                                 "upgrade volkeeper, or the manifest object is damaged")
        self.header: dict[str, Any] = first
        #: the content digest its files carry (``TarEntry.sha256`` or ``.blake3``)
        self.digest: Digest = digest
        self._consumed = False

    def _next_obj(self) -> dict[str, Any] | None:
        for line in self._lines:
            self._hash.update(self._last.encode())
            self._last = line
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise IntegrityError(f"manifest line is not valid JSON: {e}",
                                     "the manifest object is damaged") from None
            if not isinstance(obj, dict):
                raise IntegrityError("manifest line is not an object",
                                     "the manifest object is damaged")
            return obj
        return None

    def entries(self) -> Iterator[TarEntry]:
        """Every member, in archive order; sets ``summary`` when the end is reached."""
        if self._consumed:
            raise RuntimeError("manifest entries can only be read once")
        self._consumed = True
        while (obj := self._next_obj()) is not None:
            if obj.get("kind") == "summary":
                try:
                    summary = _summary_from_dict(obj)
                except (KeyError, TypeError, ValueError) as e:
                    raise IntegrityError(f"manifest summary is malformed ({e})",
                                         "the manifest object is damaged") from None
                if summary.lines_sha256 not in (None, self._hash.hexdigest()):
                    raise IntegrityError("manifest lines do not match the sha256 in its "
                                         "summary", "the manifest object is damaged")
                self._summary = summary
                return
            try:
                yield entry_from_dict(obj, self.digest)
            except (KeyError, TypeError, ValueError) as e:
                raise IntegrityError(f"manifest entry is malformed ({e!r})",
                                     "the manifest object is damaged") from None
        raise IntegrityError("manifest has no summary line (truncated)",
                             "the manifest object is incomplete; the backup may be unfinished")

    def checked_summary(self) -> ManifestSummary | None:
        """Instead of ``entries()``: read the rest hashing each line, without parsing the
        entries (several times cheaper), and return the summary once its
        ``lines_sha256`` matches. None for a manifest without ``lines_sha256`` (written by
        older versions: read its ``entries()`` from a new reader instead). Raises
        IntegrityError on damage."""
        if self._consumed:
            raise RuntimeError("manifest entries can only be read once")
        self._consumed = True
        digest = self._hash
        digest.update(self._last.encode())
        for line in self._lines:
            obj = None if line.startswith(_ENTRY_PREFIX) else _json_line(line)
            if not isinstance(obj, dict) or obj.get("kind") != "summary":
                digest.update(line.encode())  # an entry: the summary's sha256 covers it
                continue
            try:
                summary = _summary_from_dict(obj)
            except (KeyError, TypeError, ValueError) as e:
                raise IntegrityError(f"manifest summary is malformed ({e})",
                                     "the manifest object is damaged") from None
            if summary.lines_sha256 is None:
                return None
            if summary.lines_sha256 != digest.hexdigest():
                raise IntegrityError("manifest lines do not match the sha256 in its "
                                     "summary", "the manifest object is damaged")
            self._summary = summary
            return summary
        raise IntegrityError("manifest has no summary line (truncated)",
                             "the manifest object is incomplete; the backup may be unfinished")

    @property
    def read_to_end(self) -> bool:
        """True once ``entries()`` reached a valid summary line."""
        return self._summary is not None

    @property
    def summary(self) -> ManifestSummary:
        """The totals line; read ``entries()`` to the end first."""
        if self._summary is None and not self._consumed:
            for _ in self.entries():
                pass
        if self._summary is None:
            raise RuntimeError("read manifest entries to the end before asking for the summary")
        return self._summary


def check_manifest(open_lines: Callable[[], AbstractContextManager[Iterable[str]]]
                   ) -> tuple[dict[str, Any], ManifestSummary]:
    """A manifest checked whole: its header, and its summary (``Manifest.checked_summary``:
    the lines hashed, not parsed one by one; a manifest written before ``lines_sha256`` is
    read again, entry by entry, from a second ``open_lines()``). Returns the header and
    the summary; raises IntegrityError naming the damage."""
    with open_lines() as lines:
        manifest = Manifest(lines)
        summary = manifest.checked_summary()
    if summary is None:
        with open_lines() as lines:
            summary = Manifest(lines).summary
    return manifest.header, summary


def read_manifest(lines: Iterable[str]) -> Manifest:
    """Open a manifest from its lines (a text file, ``io.TextIOWrapper`` over a reader …)."""
    return Manifest(lines)
