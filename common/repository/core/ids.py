"""Object ids, blob types and the repository's key layout on a Backend.

Chunks and trees (*blobs*) are named by the keyed BLAKE3-256 of their plaintext under the
repository's id key: equal content dedups to one id, and whoever holds the storage cannot
test for known content. Packs, index files, snapshots, locks and key files get 32 random
bytes: a writer knows the name before it starts streaming (the Backend takes the key at
``open_writer``), and names from different writers never collide, so no lock is needed.
"""

from __future__ import annotations

import enum
import os

import blake3

from common.errors import InvalidInput

ID_SIZE = 32
PREFIX = "volkeeper/repo/"
CONFIG_KEY = PREFIX + "config"
KEYS_PREFIX = PREFIX + "keys/"
PACKS_PREFIX = PREFIX + "packs/"
INDEX_PREFIX = PREFIX + "index/"
SNAPSHOTS_PREFIX = PREFIX + "snapshots/"
LOCKS_PREFIX = PREFIX + "locks/"


class BlobType(enum.IntEnum):
    """What a blob holds: file content (a chunk) or a directory listing (a tree)."""

    DATA = 0
    TREE = 1


def blob_id(id_key: bytes, data: bytes | memoryview) -> bytes:
    """The keyed BLAKE3-256 id of a blob's plaintext."""
    return blake3.blake3(data, key=id_key).digest()


def random_id() -> bytes:
    """32 random bytes naming a pack, index, snapshot, lock or key file."""
    return os.urandom(ID_SIZE)


def parse_id(text: str) -> bytes:
    """The 32 id bytes of a 64-character hex name; InvalidInput otherwise."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != ID_SIZE:
        raise InvalidInput(f"{text!r} is not a repository object id", "ids are 64 hex digits")
    return raw


def short(object_id: bytes) -> str:
    """The first 8 hex digits, for messages."""
    return object_id[:4].hex()


def pack_key(pack_id: bytes) -> str:
    """``volkeeper/repo/packs/<2 hex>/<64 hex>`` (fan-out keeps local directories small)."""
    h = pack_id.hex()
    return f"{PACKS_PREFIX}{h[:2]}/{h}"


def index_key(index_id: bytes) -> str:
    """``volkeeper/repo/index/<64 hex>``."""
    return INDEX_PREFIX + index_id.hex()


def snapshot_key(snapshot_id: bytes) -> str:
    """``volkeeper/repo/snapshots/<64 hex>``."""
    return SNAPSHOTS_PREFIX + snapshot_id.hex()


def lock_key(lock_id: bytes) -> str:
    """``volkeeper/repo/locks/<64 hex>``."""
    return LOCKS_PREFIX + lock_id.hex()


def key_file_key(key_file_id: bytes) -> str:
    """``volkeeper/repo/keys/<64 hex>``."""
    return KEYS_PREFIX + key_file_id.hex()


def id_from_key(storage_key: str) -> bytes:
    """The id at the end of a storage key such as a pack or index key."""
    return parse_id(storage_key.rsplit("/", 1)[-1])


def aad(kind: bytes, object_id: bytes, version: int = 1) -> bytes:
    """Associated data binding a sealed object to its kind, format version and id."""
    return kind + bytes((version,)) + object_id
