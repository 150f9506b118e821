"""The repository config object: the parameters every writer shares, authenticated.

``volkeeper/repo/config`` is JSON: format version, repository id, encryption
(``aes-256-gcm`` or ``none``), chunker sizes, pack size and zstd level, and a MAC over all
of it keyed from the master key, so a tampered config (say, one switched to
``encryption: none`` to make writers store plaintext) is refused. Unencrypted
repositories exist only when asked for at creation; they keep their id key and chunker
seed in the config in clear. Creating and opening a repository: ``repository``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import blake3

from common.errors import IntegrityError, InvalidInput
from common.repository.core import ids
from common.repository.core.blob import DEFAULT_ZSTD_LEVEL
from common.repository.core.chunker import DEFAULT_CHUNKER, ChunkerParams
from common.repository.core.crypto import Key
from common.repository.core.pack import DEFAULT_PACK_SIZE

FORMAT_VERSION = 1
_MAC_CONTEXT = "volkeeper repository config MAC v1"


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


def decode_config(data: bytes, where: str) -> tuple[RepositoryConfig, dict[str, Any]]:
    """The config and its JSON document (which holds the MAC, and an unencrypted
    repository's master key); IntegrityError when it is malformed."""
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


def authentic(config: RepositoryConfig, doc: dict[str, Any], key: Key | None) -> bool:
    """Whether the config document's MAC is the one ``key`` gives its fields."""
    return key is not None and doc.get("mac") == _mac(key, config.body())


def check_authentic(config: RepositoryConfig, doc: dict[str, Any], key: Key | None,
                    where: str) -> None:
    """Raise IntegrityError unless the config document is ``authentic``."""
    if not authentic(config, doc, key):
        raise IntegrityError(
            f"the config of repository {where} failed to authenticate (modified or damaged)",
            "restore volkeeper/repo/config from a copy; do not write to this repository",
        )
