"""The repository config object, and creating / opening a repository.

``volkeeper/repo/config`` is JSON: format version, repository id, encryption
(``aes-256-gcm`` or ``none``), chunker sizes, pack size and zstd level, and a MAC over all
of it keyed from the master key, so a tampered config (say, one switched to
``encryption: none`` to make writers store plaintext) is refused. Unencrypted
repositories exist only when asked for at creation; they keep their id key and chunker
seed in the config in clear. Creating writes the key file first and the config last, with
``put_bytes_if_absent``: a repository exists once its config does, and of two hosts
initialising the same empty target at once exactly one config lands; the loser removes
its key file and gets Conflict (``open_or_init_repository`` then opens the winner's).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import blake3

from common.errors import Conflict, IntegrityError, InvalidInput, NotFound
from common.repository.core import ids, keys
from common.repository.core.blob import DEFAULT_ZSTD_LEVEL, BlobCodec
from common.repository.core.chunker import DEFAULT_CHUNKER, Chunker, ChunkerParams
from common.repository.core.crypto import Cipher, Key, cipher_for
from common.repository.core.pack import DEFAULT_PACK_SIZE
from common.storage.base import Backend

FORMAT_VERSION = 1
_MAC_CONTEXT = "volkeeper repository config MAC v1"
_PASS_HINT = "set VOLKEEPER_REPOSITORY_PASSWORD or the target's key file"


@dataclass(frozen=True)
class RepositoryConfig:
    """The parameters every writer of a repository must agree on."""

    repository_id: bytes
    encrypted: bool = True
    chunker: ChunkerParams = DEFAULT_CHUNKER
    pack_size: int = DEFAULT_PACK_SIZE
    zstd_level: int = DEFAULT_ZSTD_LEVEL

    def body(self) -> dict[str, Any]:
        """The MAC'd JSON fields."""
        return {
            "version": FORMAT_VERSION,
            "id": self.repository_id.hex(),
            "encryption": "aes-256-gcm" if self.encrypted else "none",
            "chunker": {
                "min": self.chunker.min_size,
                "avg": self.chunker.avg_size,
                "max": self.chunker.max_size,
            },
            "pack_size": self.pack_size,
            "compression": {"algorithm": "zstd", "level": self.zstd_level},
        }


@dataclass
class Repository:
    """An opened repository: its backend, config, master key and codecs."""

    backend: Backend
    config: RepositoryConfig
    key: Key
    #: The key file the passphrase opened (None for unencrypted repositories).
    key_file_id: bytes | None = None
    cipher: Cipher = field(init=False)
    codec: BlobCodec = field(init=False)

    def __post_init__(self) -> None:
        self.cipher = cipher_for(self.key, self.config.encrypted)
        self.codec = BlobCodec(self.key, self.config.encrypted, self.config.zstd_level)

    def chunker(self) -> Chunker:
        """A new chunker with the repository's sizes and secret seed (one per thread)."""
        return Chunker(self.config.chunker, self.key.chunker_seed)


def _mac(key: Key, body: dict[str, Any]) -> str:
    mac_key = blake3.blake3(key.enc_key + key.id_key, derive_key_context=_MAC_CONTEXT).digest()
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return blake3.blake3(canonical, key=mac_key).hexdigest()


def encode_config(config: RepositoryConfig, key: Key) -> bytes:
    """The config object's bytes."""
    doc = config.body()
    if not config.encrypted:
        doc["master_key"] = key.to_bytes().hex()
    doc["mac"] = _mac(key, config.body())
    return json.dumps(doc, indent=1).encode()


def _parse(data: bytes, where: str) -> tuple[RepositoryConfig, dict[str, Any]]:
    try:
        doc = json.loads(data)
        if doc["version"] != FORMAT_VERSION:
            raise ValueError(f"format version {doc['version']} is not supported")
        ch = doc["chunker"]
        config = RepositoryConfig(
            repository_id=ids.parse_id(doc["id"]),
            encrypted={"aes-256-gcm": True, "none": False}[doc["encryption"]],
            chunker=ChunkerParams(int(ch["min"]), int(ch["avg"]), int(ch["max"])).validate(),
            pack_size=int(doc["pack_size"]),
            zstd_level=int(doc["compression"]["level"]),
        )
    except (ValueError, KeyError, TypeError, InvalidInput) as exc:
        raise IntegrityError(
            f"the config of repository {where} is malformed: {exc}",
            "restore volkeeper/repo/config from a copy of the repository",
        ) from None
    return config, doc


def init_repository(
    backend: Backend,
    passphrase: str | None,
    *,
    unencrypted: bool = False,
    kdf: keys.KdfParams = keys.DEFAULT_KDF,
    chunker: ChunkerParams = DEFAULT_CHUNKER,
    pack_size: int = DEFAULT_PACK_SIZE,
    zstd_level: int = DEFAULT_ZSTD_LEVEL,
    chunking_from: Repository | None = None,
) -> Repository:
    """Create a repository on ``backend``; Conflict if one exists. Encrypted unless
    ``unencrypted`` is passed explicitly (and then no passphrase may be given).

    ``chunking_from`` shares another repository's chunker sizes, chunker seed and id key
    (never its encryption key): the same file then yields the same blob ids in both, so
    snapshots copied between them need no re-hashing and dedup against native backups."""
    if unencrypted and passphrase:
        raise InvalidInput(
            "a passphrase was given for an unencrypted repository",
            "drop the passphrase, or do not ask for an unencrypted repository",
        )
    if not unencrypted and not passphrase:
        raise InvalidInput(f"creating repository {backend.display} needs a passphrase", _PASS_HINT)
    try:
        backend.stat(ids.CONFIG_KEY)
    except NotFound:
        pass
    else:
        raise _exists(backend)
    key = Key.new()
    if chunking_from is not None:
        chunker = chunking_from.config.chunker
        key = Key(key.enc_key, chunking_from.key.id_key, chunking_from.key.chunker_seed)
    config = RepositoryConfig(
        ids.random_id(), not unencrypted, chunker.validate(), pack_size, zstd_level
    )
    key_file_id = keys.add_key(backend, key, passphrase, kdf) if passphrase else None
    data = encode_config(config, key)
    try:
        backend.put_bytes_if_absent(ids.CONFIG_KEY, data)
        # A server that ignores If-None-Match overwrites instead of refusing: read back.
        won = backend.get_bytes(ids.CONFIG_KEY) == data
    except Conflict:
        won = False
    except BaseException:
        _drop_key_file(backend, key_file_id)
        raise
    if not won:  # another host initialised the target at the same instant
        _drop_key_file(backend, key_file_id)
        raise _exists(backend)
    return Repository(backend, config, key, key_file_id)


def open_or_init_repository(
    backend: Backend, passphrase: str | None, **init_options: Any
) -> Repository:
    """Open the repository on ``backend``, creating it first when there is none. Safe
    when several hosts do this at once: one initialises, the others open its repository
    (so they use the key its config authenticates, not one they generated)."""
    try:
        return open_repository(backend, passphrase)
    except NotFound:
        pass
    try:
        return init_repository(backend, passphrase, **init_options)
    except Conflict:
        return open_repository(backend, passphrase)


def _exists(backend: Backend) -> Conflict:
    return Conflict(f"a repository already exists at {backend.display}", "open it instead")


def _drop_key_file(backend: Backend, key_file_id: bytes | None) -> None:
    """Remove the key file of an initialisation that lost (it opens no config)."""
    if key_file_id is not None:
        with contextlib.suppress(Exception):
            backend.delete(ids.key_file_key(key_file_id))


def open_repository(backend: Backend, passphrase: str | None) -> Repository:
    """Open an existing repository. Reads only. Refuses a passphrase for an unencrypted
    repository (it would otherwise be written to in clear without anyone noticing)."""
    where = backend.display
    try:
        data = backend.get_bytes(ids.CONFIG_KEY)
    except NotFound:
        raise NotFound(
            "repository", where, "the first --format repo backup to this target creates it"
        ) from None
    config, doc = _parse(data, where)
    if not config.encrypted:
        if passphrase:
            raise Conflict(
                f"repository {where} is unencrypted but a passphrase was given",
                "refusing to store data in clear; unset the passphrase if that is intended",
            )
        key = Key.from_bytes(bytes.fromhex(doc.get("master_key", "")))
        _check_mac(config, doc, key, where)
        return Repository(backend, config, key, None)
    if not passphrase:
        raise InvalidInput(
            f"repository {where} is encrypted and no passphrase was given", _PASS_HINT
        )
    opened = False
    for key_file_id in keys.list_key_files(backend):
        try:
            blob = backend.get_bytes(ids.key_file_key(key_file_id))
        except NotFound:
            continue  # removed since we listed (e.g. by an initialisation that lost)
        try:
            key = keys.unwrap_key(blob, passphrase, key_file_id, where)
        except (keys.WrongPassphrase, IntegrityError):
            continue
        opened = True
        if doc.get("mac") == _mac(key, config.body()):
            return Repository(backend, config, key, key_file_id)
    if opened:
        _check_mac(config, doc, None, where)
    raise keys.WrongPassphrase(f"wrong passphrase for repository {where}", _PASS_HINT)


def _check_mac(config: RepositoryConfig, doc: dict[str, Any], key: Key | None, where: str) -> None:
    if key is None or doc.get("mac") != _mac(key, config.body()):
        raise IntegrityError(
            f"the config of repository {where} failed to authenticate (modified or damaged)",
            "restore volkeeper/repo/config from a copy; do not write to this repository",
        )
