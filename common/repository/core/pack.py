"""Pack files: many sealed blobs in one storage object, with a sealed header at the end.

Layout: ``[blob 0][blob 1]…[sealed header][header length: u32 little-endian]``. The
header plaintext is ``"VKPH" v1`` followed by one 46-byte record per blob (type,
compression, blob id, offset, length, raw length) and is sealed with
``aad = "VKP" v1 || pack id``, so a pack renamed to another id fails to open. Blobs are
sealed independently of the pack (their aad holds only type and id), so prune can move a
blob's ciphertext into a new pack unchanged. Headers are self-describing: index files can
always be rebuilt from pack headers.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from common.errors import IntegrityError
from common.repository.core import ids
from common.repository.core.blob import BlobCodec, EncodedBlob
from common.repository.core.crypto import Cipher
from common.repository.core.ids import BlobType
from common.repository.core.index import ENTRY, IndexEntry, pack_entry, unpack_entry
from common.storage.base import Backend, ObjectWriter

#: 16 MiB = the S3 backend's part size: a pack is one PutObject, never a multipart upload.
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
MAX_PACK_SIZE = 2**32 - 1
_MAGIC = b"VKPH\x01"
_AAD_KIND = b"VKP"
_TAIL = struct.Struct("<I")
_HINT = ("check it with `volkeeper repair TARGET --read-data --dry-run`; a damaged pack must "
         "be rebuilt from a good copy or pruned")
_TYPES = frozenset(int(t) for t in BlobType)


class PackWriter:
    """Streams blobs into one new pack object; ``finish`` writes the header and commits.

    Use ``fits(n)`` before ``add`` to keep packs at most ``target_size`` bytes. Nothing is
    visible in the repository until ``finish`` returns; ``abort`` (or leaving a ``with``
    block without finishing) discards the upload.
    """

    def __init__(
        self,
        backend: Backend,
        cipher: Cipher,
        pack_id: bytes | None = None,
        target_size: int = DEFAULT_PACK_SIZE,
    ) -> None:
        self.pack_id = pack_id if pack_id is not None else ids.random_id()
        self.key = ids.pack_key(self.pack_id)
        self.target_size = target_size
        self._cipher = cipher
        self._writer: ObjectWriter = backend.open_writer(self.key)
        self._entries: list[IndexEntry] = []
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        """Bytes of blob data written so far."""
        return self._size

    @property
    def count(self) -> int:
        """Number of blobs written so far."""
        return len(self._entries)

    def fits(self, length: int) -> bool:
        """Whether a blob of ``length`` stored bytes keeps the pack within its target (an
        empty pack accepts any blob)."""
        return not self._entries or self._size + length <= self.target_size

    def add(self, blob: EncodedBlob) -> IndexEntry:
        """Append one encoded blob; returns its (future) index entry."""
        if self._done:
            raise ValueError(f"pack {self.key} is already finished")
        if self._size + len(blob.data) > MAX_PACK_SIZE:
            raise ValueError("a pack cannot exceed 4 GiB")
        entry = IndexEntry(
            blob.blob_id,
            blob.blob_type,
            self.pack_id,
            self._size,
            len(blob.data),
            blob.raw_length,
            blob.compression,
        )
        data = blob.data
        self._writer.write(data if isinstance(data, bytes) else memoryview(data))
        self._size += len(blob.data)
        self._entries.append(entry)
        return entry

    def finish(self) -> list[IndexEntry]:
        """Write the sealed header and its length, commit, and return the index entries.
        An empty pack is aborted instead and yields no entries."""
        if self._done:
            raise ValueError(f"pack {self.key} is already finished")
        self._done = True
        if not self._entries:
            self._writer.abort()
            return []
        try:
            header = seal_header(self._cipher, self.pack_id, self._entries)
            self._writer.write(header)
            self._writer.write(_TAIL.pack(len(header)))
            self._writer.commit()
        except BaseException:
            self._writer.abort()
            raise
        return list(self._entries)

    def abort(self) -> None:
        """Discard the upload; safe to call more than once."""
        self._done = True
        self._writer.abort()

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._done:
            self.abort()


def seal_header(cipher: Cipher, pack_id: bytes, entries: list[IndexEntry]) -> bytes:
    """The sealed pack header listing ``entries``."""
    plain = _MAGIC + b"".join(pack_entry(e) for e in entries)
    return cipher.seal(plain, ids.aad(_AAD_KIND, pack_id))


def header_records(
    cipher: Cipher, pack_id: bytes, tail: bytes | memoryview, pack_size: int
) -> bytes:
    """The 46-byte records of a pack's header, from its last bytes (``tail`` must hold
    header and length); IntegrityError unless the header opens, every record has a known
    blob type and every blob lies inside the pack's data."""
    what = f"pack {pack_id.hex()}"
    if len(tail) < _TAIL.size:
        raise IntegrityError(f"{what} is truncated ({pack_size} bytes)", _HINT)
    (hlen,) = _TAIL.unpack(tail[-_TAIL.size :])
    if hlen + _TAIL.size > len(tail):
        raise IntegrityError(f"{what} is truncated or its header length is damaged", _HINT)
    sealed = tail[len(tail) - _TAIL.size - hlen : len(tail) - _TAIL.size]
    plain = cipher.open_(sealed, ids.aad(_AAD_KIND, pack_id), f"header of {what}")
    body = plain[len(_MAGIC) :]
    if plain[: len(_MAGIC)] != _MAGIC or len(body) % ENTRY.size:
        raise IntegrityError(f"header of {what} is malformed", _HINT)
    unknown = set(body[:: ENTRY.size]) - _TYPES
    if unknown:
        raise IntegrityError(
            f"header of {what} is malformed: {min(unknown)} is not a valid BlobType", _HINT)
    data_end = pack_size - _TAIL.size - hlen
    for _, _, blob_id, offset, length, _ in ENTRY.iter_unpack(body):
        if offset + length > data_end:
            raise IntegrityError(
                f"header of {what} points past its data (blob {blob_id.hex()})", _HINT
            )
    return body


def parse_header(
    cipher: Cipher, pack_id: bytes, tail: bytes | memoryview, pack_size: int
) -> list[IndexEntry]:
    """Entries of a pack from its last bytes (``tail`` must hold header and length)."""
    body = memoryview(header_records(cipher, pack_id, tail, pack_size))
    return [unpack_entry(body[i : i + ENTRY.size], pack_id)
            for i in range(0, len(body), ENTRY.size)]


def read_range(backend: Backend, key: str, offset: int, length: int) -> bytes:
    """``length`` bytes of an object from ``offset`` (one ``Backend.read_range``, so on S3
    only those bytes are transferred); fewer than ``length`` → IntegrityError."""
    data = backend.read_range(key, offset, length)
    if len(data) != length:
        raise IntegrityError(
            f"object {key} is truncated (wanted {length} bytes at {offset})", _HINT
        )
    return data


def _skip(reader: BinaryIO, n: int) -> None:
    seekable = getattr(reader, "seekable", None)
    if seekable is not None and seekable():
        reader.seek(n)
        return
    while n > 0:
        got = reader.read(min(n, 1 << 20))
        if not got:
            return
        n -= len(got)


def _read_exact(reader: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    while n > 0:
        got = reader.read(n)
        if not got:
            break
        parts.append(got)
        n -= len(got)
    return b"".join(parts)


def read_pack_header(backend: Backend, pack_key: str, cipher: Cipher) -> list[IndexEntry]:
    """The index entries stored in a pack's header (one ranged read in the common case)."""
    pack_id = ids.id_from_key(pack_key)
    body = memoryview(read_header_records(backend, pack_key, cipher))
    return [unpack_entry(body[i : i + ENTRY.size], pack_id)
            for i in range(0, len(body), ENTRY.size)]


def read_header_records(backend: Backend, pack_key: str, cipher: Cipher) -> bytes:
    """The 46-byte records of a pack's header (see ``header_records``), read with one
    ranged read in the common case."""
    pack_id = ids.id_from_key(pack_key)
    size = backend.stat(pack_key).size
    guess = min(size, 64 * 1024)
    tail = read_range(backend, pack_key, size - guess, guess)
    if len(tail) >= _TAIL.size:
        (hlen,) = _TAIL.unpack(tail[-_TAIL.size :])
        need = hlen + _TAIL.size
        if guess < need <= size:
            tail = read_range(backend, pack_key, size - need, need)
    return header_records(cipher, pack_id, tail, size)


def read_blob(backend: Backend, pack_key: str, entry: IndexEntry, codec: BlobCodec) -> bytes:
    """Read, authenticate, decompress and verify one blob of a pack."""
    data = read_range(backend, pack_key, entry.offset, entry.length)
    return codec.decode(entry.blob_type, entry.blob_id, data, entry.raw_length)


def read_pack(backend: Backend, pack_key: str, cipher: Cipher) -> tuple[list[IndexEntry], bytes]:
    """The whole pack in one read and its parsed header (for check --read-data and copy)."""
    data = backend.get_bytes(pack_key)
    return parse_header(cipher, ids.id_from_key(pack_key), data, len(data)), data
