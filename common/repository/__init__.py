"""volkeeper's native repository format: deduplicated, compressed, encrypted backups.

Concepts (the full specification is docs/repository-format.md):

- *chunk*: a piece of a file cut by content-defined chunking (``chunker``); named by the
  keyed BLAKE3 hash of its plaintext, so equal content is stored once per repository.
- *tree*: a directory listing serialised as a blob; it names the chunks of each file.
- *blob*: a chunk or a tree, compressed (zstd, when it helps) and sealed on its own
  (``blob``; AES-256-GCM, ``crypto``).
- *pack*: a storage object holding many blobs and a sealed header listing them (``pack``).
- *index*: files mapping blob id → (pack, offset, length); loaded into a compact
  in-memory ``Index`` (``index``).
- *snapshot*: a small object naming the root tree of one backup; written last, so a
  killed backup leaves no snapshot, only unreferenced packs.
- *key file*: the master key wrapped by a passphrase with scrypt (``keys``, managed
  through an opened repository by ``keyring``); the ``config`` object holds the
  parameters every writer shares (``config``).
- *lock*: per-operation shared (backup, copy) or exclusive (forget, prune) lock objects
  (``locks``). Maintenance: ``prune`` (forget and prune), ``copy`` (snapshots between
  repositories), ``stats`` (sizes and ratios).
"""

from common.repository.blob import BlobCodec, EncodedBlob
from common.repository.chunker import Chunker, ChunkerParams
from common.repository.config import (
    Repository,
    RepositoryConfig,
    init_repository,
    open_repository,
)
from common.repository.crypto import AesGcmCipher, Cipher, Key, NullCipher
from common.repository.ids import BlobType
from common.repository.index import Index, IndexEntry, IndexFile, decode_index, encode_index
from common.repository.keys import WrongPassphrase, open_repository_key
from common.repository.pack import PackWriter, read_blob, read_pack, read_pack_header

__all__ = [
    "AesGcmCipher",
    "BlobCodec",
    "BlobType",
    "Chunker",
    "ChunkerParams",
    "Cipher",
    "EncodedBlob",
    "Index",
    "IndexEntry",
    "IndexFile",
    "Key",
    "NullCipher",
    "PackWriter",
    "Repository",
    "RepositoryConfig",
    "WrongPassphrase",
    "decode_index",
    "encode_index",
    "init_repository",
    "open_repository",
    "open_repository_key",
    "read_blob",
    "read_pack",
    "read_pack_header",
]
