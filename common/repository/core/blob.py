"""Blobs: one chunk of file content or one tree, compressed and sealed on its own.

Stored form: ``seal(compression byte || payload, aad = "VKB" v1 || type || blob id)``.
The compression byte is 0 (payload is the plaintext) or 1 (payload is a zstd frame);
zstd is skipped when it does not make the blob smaller. The id is bound into the
associated data, so a blob cannot be passed off as another; decoding re-hashes the
plaintext with the id key as a second check (and the only one for unencrypted repos).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import blake3
import zstandard

from common.errors import IntegrityError
from common.repository.core import ids
from common.repository.core.crypto import Cipher, Key, cipher_for
from common.repository.core.ids import BlobType

COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1
DEFAULT_ZSTD_LEVEL = 3
_AAD_KIND = b"VKB"
_HINT = ("`volkeeper repair TARGET --read-data` finds and repairs it; the pack holding it "
         "may be damaged")


@dataclass(frozen=True)
class EncodedBlob:
    """A blob ready to go into a pack."""

    blob_id: bytes
    blob_type: BlobType
    data: bytes | bytearray  # a bytearray: a large blob sealed in place (``seal_prefixed``)
    raw_length: int
    compression: int


def blob_aad(blob_type: BlobType, blob_id: bytes) -> bytes:
    """The associated data sealed with a blob."""
    return ids.aad(_AAD_KIND, bytes((int(blob_type),)) + blob_id)


_AAD_HEADS = tuple(blob_aad(t, b"") for t in BlobType)  # by type: the aad before the id


class BlobCodec:
    """Encodes and decodes blobs of one repository. Thread-safe."""

    def __init__(self, key: Key, encrypted: bool = True, level: int = DEFAULT_ZSTD_LEVEL) -> None:
        self.key = key
        self.cipher: Cipher = cipher_for(key, encrypted)
        self.level = level
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        c = getattr(self._local, "cctx", None)
        if c is None:
            c = self._local.cctx = zstandard.ZstdCompressor(level=self.level)
        return c

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        d = getattr(self._local, "dctx", None)
        if d is None:
            d = self._local.dctx = zstandard.ZstdDecompressor()
        return d

    def blob_id(self, plaintext: bytes | memoryview) -> bytes:
        """The keyed id of ``plaintext``."""
        return ids.blob_id(self.key.id_key, plaintext)

    def encode(
        self, blob_type: BlobType, plaintext: bytes, blob_id: bytes | None = None
    ) -> EncodedBlob:
        """Compress (when it helps) and seal one blob; computes its id unless given."""
        if blob_id is None:
            blob_id = self.blob_id(plaintext)
        compression, payload = COMPRESSION_NONE, plaintext
        if len(plaintext) > 64 and self.level > 0:
            packed = self._compressor().compress(plaintext)
            if len(packed) < len(plaintext):
                compression, payload = COMPRESSION_ZSTD, packed
            del packed  # not kept while sealing when it did not help
        # the compression byte leads the sealed plaintext; a large payload is not copied
        # behind it (``seal_prefixed``): a chunk of up to 8 MiB in each encoder thread
        sealed = self.cipher.seal_prefixed(bytes((compression,)), payload,
                                           blob_aad(blob_type, blob_id))
        return EncodedBlob(blob_id, blob_type, sealed, len(plaintext), compression)

    def decode(
        self,
        blob_type: BlobType,
        blob_id: bytes,
        data: bytes | memoryview,
        raw_length: int | None = None,
    ) -> bytes:
        """Authenticate, decompress and verify one blob; IntegrityError naming it if not."""
        plain = self._open(blob_type, blob_id, data, raw_length)
        return plain if isinstance(plain, bytes) else bytes(plain)

    def decode_view(
        self, blob_type: BlobType, blob_id: bytes, data: bytes | memoryview,
        raw_length: int | None = None,
    ) -> bytes | memoryview:
        """``decode``, but an uncompressed blob's plaintext is a view into its decrypted
        body rather than a copy (for a caller that only writes it out)."""
        return self._open(blob_type, blob_id, data, raw_length)

    def verify(
        self, blob_type: BlobType, blob_id: bytes, data: bytes | memoryview, raw_length: int
    ) -> None:
        """``decode`` without keeping the plaintext (check --read-data)."""
        self._open(blob_type, blob_id, data, raw_length)

    def _open(
        self, blob_type: BlobType, blob_id: bytes, data: bytes | memoryview,
        raw_length: int | None,
    ) -> bytes | memoryview:
        aad = _AAD_HEADS[blob_type] + blob_id
        try:
            body = self.cipher.open_(data, aad)
        except IntegrityError:  # again, for the message naming the blob
            body = self.cipher.open_(data, aad, _what(blob_type, blob_id))
        plain: bytes | memoryview
        if not body:
            raise IntegrityError(f"{_what(blob_type, blob_id)} has an empty body", _HINT)
        if body[0] == COMPRESSION_NONE:
            plain = memoryview(body)[1:]
        elif body[0] == COMPRESSION_ZSTD:
            try:
                plain = self._decompressor().decompress(memoryview(body)[1:])
            except zstandard.ZstdError as exc:
                raise IntegrityError(
                    f"{_what(blob_type, blob_id)} does not decompress: {exc}", _HINT) from None
        else:
            raise IntegrityError(
                f"{_what(blob_type, blob_id)} has unknown compression {body[0]}", _HINT)
        if raw_length is not None and len(plain) != raw_length:
            raise IntegrityError(
                f"{_what(blob_type, blob_id)} is {len(plain)} bytes, the index says "
                f"{raw_length}", _HINT
            )
        if blake3.blake3(plain, key=self.key.id_key).digest() != blob_id:
            raise IntegrityError(
                f"{_what(blob_type, blob_id)} does not match its id (content hash differs)",
                _HINT)
        return plain


def _what(blob_type: BlobType, blob_id: bytes) -> str:
    return f"{BlobType(blob_type).name.lower()} blob {blob_id.hex()}"
