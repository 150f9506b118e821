"""Key files: the master key wrapped by a passphrase through scrypt.

A repository has one master key (``crypto.Key``) and one or more key files under
``volkeeper/repo/keys/<id>``. Each key file is JSON holding the scrypt parameters, a random
salt and the master key sealed with AES-256-GCM under the scrypt-derived wrapping key, so
any passphrase with a key file opens the repository and passphrases can be added and
removed without re-encrypting data. The last key file can never be removed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from common.derived_keys import current_store
from common.errors import Conflict, IntegrityError, InvalidInput, NotFound, Unauthorized
from common.repository.core import ids
from common.repository.core.crypto import AesGcmCipher, Key
from common.storage.base import Backend

KEY_FILE_VERSION = 1
_AAD_KIND = b"VKK"


class WrongPassphrase(Unauthorized):
    """No key file of the repository opens with the given passphrase."""

    code = "wrong_passphrase"


@dataclass(frozen=True)
class KdfParams:
    """scrypt cost: N (CPU/memory, a power of two), r (block size), p (parallelism)."""

    n: int = 2**17
    r: int = 8
    p: int = 1

    def validate(self) -> KdfParams:
        """Refuse parameters that are weak or that would exhaust memory (hostile files)."""
        if self.n < 2 or self.n & (self.n - 1) or self.n > 2**22:
            raise InvalidInput(f"scrypt N={self.n} is not a power of two in [2, 2**22]")
        if not (1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise InvalidInput(f"scrypt r={self.r}, p={self.p} out of range (r<=32, p<=16)")
        return self


#: Production default: 0.53 s and 128 MiB on the reference machine (see the format doc).
DEFAULT_KDF = KdfParams()
#: The weakest scrypt N a configured new key file may get (16 MiB, ~50 ms); key files
#: already written with less still open (``validate`` bounds only what is readable).
MIN_NEW_KDF_N = 2**14
#: The shortest new passphrase accepted (existing ones keep working).
MIN_PASSPHRASE = 12


def new_kdf(n: int) -> KdfParams:
    """The scrypt parameters for a new key file with the configured cost ``n``; refuses
    one below ``MIN_NEW_KDF_N``."""
    if n < MIN_NEW_KDF_N:
        raise InvalidInput(f"scrypt N={n} (VOLKEEPER_REPOSITORY_KDF_N) is too weak for a new "
                           f"key file: the minimum is {MIN_NEW_KDF_N} (2**14)",
                           "unset VOLKEEPER_REPOSITORY_KDF_N (default 2**17) or set a power "
                           "of two of at least 16384")
    return KdfParams(n=n).validate()


def check_new_passphrase(passphrase: str) -> None:
    """Refuse a new passphrase shorter than ``MIN_PASSPHRASE`` characters."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput(f"the new repository passphrase is too short ({len(passphrase)} "
                           f"characters; at least {MIN_PASSPHRASE} are required)",
                           "choose a longer one, e.g. several words or the output of "
                           "`openssl rand -base64 24`; repositories created with a shorter "
                           "passphrase still open with it")


_DERIVED: OrderedDict[bytes, bytes] = OrderedDict()
_DERIVED_MAX = 64
_derived_lock = threading.Lock()


def _cache_key(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    return hashlib.sha256(b"\0".join((
        passphrase.encode("utf-8"), salt, f"{kdf.n}/{kdf.r}/{kdf.p}".encode()))).digest()


def _cached(cache_key: bytes) -> bytes | None:
    with _derived_lock:
        hit = _DERIVED.get(cache_key)
        if hit is not None:
            _DERIVED.move_to_end(cache_key)
            return hit
    store = current_store()
    hit = store.get(cache_key) if store is not None else None
    if hit is not None:
        _remember(cache_key, hit)
    return hit


def _remember(cache_key: bytes, derived: bytes) -> None:
    with _derived_lock:
        _DERIVED[cache_key] = derived
        while len(_DERIVED) > _DERIVED_MAX:
            _DERIVED.popitem(last=False)


def _derive(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    """scrypt(passphrase, salt). Results are kept in this process (a few dozen, keyed by a
    hash of all inputs) and in the derived-key store if one is set: a worker opens the same
    repository for every job, and scrypt is deliberately slow (~0.3-1 s)."""
    cache_key = _cache_key(passphrase, salt, kdf)
    hit = _cached(cache_key)
    if hit is not None:
        return hit
    scrypt = Scrypt(salt=salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p)
    derived = scrypt.derive(passphrase.encode("utf-8"))
    _remember(cache_key, derived)
    store = current_store()
    if store is not None:
        store.put(cache_key, derived)
    return derived


def wrap_key(
    master: Key, passphrase: str, key_file_id: bytes, kdf: KdfParams = DEFAULT_KDF
) -> bytes:
    """Serialise a key file: ``master`` sealed under a key derived from ``passphrase``."""
    if not passphrase:
        raise InvalidInput("the repository passphrase is empty", "choose a non-empty passphrase")
    kdf.validate()
    salt = os.urandom(32)
    sealed = AesGcmCipher(_derive(passphrase, salt, kdf)).seal(
        master.to_bytes(), ids.aad(_AAD_KIND, key_file_id)
    )
    doc = {
        "version": KEY_FILE_VERSION,
        "created": datetime.now(UTC).isoformat(),
        "hostname": socket.gethostname(),
        "kdf": "scrypt",
        "n": kdf.n,
        "r": kdf.r,
        "p": kdf.p,
        "salt": base64.b64encode(salt).decode(),
        "data": base64.b64encode(sealed).decode(),
    }
    return json.dumps(doc, indent=1).encode()


def _parse(data: bytes, key_file_id: bytes, where: str) -> tuple[KdfParams, bytes, bytes]:
    """(cost, salt, sealed master key) of a key file; IntegrityError if malformed."""
    try:
        doc = json.loads(data)
        if doc.get("version") != KEY_FILE_VERSION or doc.get("kdf") != "scrypt":
            raise ValueError("unsupported key file version or KDF")
        kdf = KdfParams(int(doc["n"]), int(doc["r"]), int(doc["p"])).validate()
        salt = base64.b64decode(doc["salt"], validate=True)
        sealed = base64.b64decode(doc["data"], validate=True)
    except (ValueError, KeyError, TypeError, InvalidInput) as exc:
        raise IntegrityError(
            f"key file {ids.short(key_file_id)} of repository {where} is malformed: {exc}",
            "remove it and add the passphrase again from a working key",
        ) from None
    return kdf, salt, sealed


def _open_with(wrapping: bytes, sealed: bytes, key_file_id: bytes, where: str) -> Key:
    try:
        plain = AesGcmCipher(wrapping).open_(sealed, ids.aad(_AAD_KIND, key_file_id),
                                             "key file")
    except IntegrityError:
        raise _wrong(where) from None
    return Key.from_bytes(plain)


def unwrap_key(data: bytes, passphrase: str, key_file_id: bytes, where: str) -> Key:
    """Open a key file; WrongPassphrase if the passphrase does not fit, IntegrityError if
    the file is malformed."""
    kdf, salt, sealed = _parse(data, key_file_id, where)
    return _open_with(_derive(passphrase, salt, kdf), sealed, key_file_id, where)


def _wrong(where: str) -> WrongPassphrase:
    return WrongPassphrase(
        f"wrong passphrase for repository {where}",
        "check VOLKEEPER_REPOSITORY_PASSWORD or the key file",
    )


def list_key_files(backend: Backend) -> list[bytes]:
    """Ids of every key file, in key order."""
    return [ids.id_from_key(info.key) for info in backend.list(ids.KEYS_PREFIX)]


def add_key(backend: Backend, master: Key, passphrase: str, kdf: KdfParams = DEFAULT_KDF) -> bytes:
    """Write a new key file opening ``master`` with ``passphrase``; returns its id."""
    key_file_id = ids.random_id()
    backend.put_bytes(ids.key_file_key(key_file_id), wrap_key(master, passphrase, key_file_id, kdf))
    return key_file_id


def find_key(backend: Backend, passphrase: str) -> tuple[bytes, Key]:
    """Try every key file; returns (key file id, master key) of the first that opens.
    Reads only, never writes."""
    where = backend.display
    key_file_ids = list_key_files(backend)
    if not key_file_ids:
        raise NotFound(
            "repository key", where, "initialise the repository or restore its keys/ folder"
        )
    files: list[tuple[bytes, bytes]] = []
    for key_file_id in key_file_ids:
        try:
            files.append((key_file_id, backend.get_bytes(ids.key_file_key(key_file_id))))
        except NotFound:
            continue  # removed since we listed
    # first every key file whose derived key is cached (no scrypt), then the others
    for key_file_id, data in files:
        try:
            kdf, salt, sealed = _parse(data, key_file_id, where)
        except IntegrityError:
            continue
        wrapping = _cached(_cache_key(passphrase, salt, kdf))
        if wrapping is not None:
            try:
                return key_file_id, _open_with(wrapping, sealed, key_file_id, where)
            except WrongPassphrase:
                continue
    malformed: IntegrityError | None = None
    for key_file_id, data in files:
        try:
            return key_file_id, unwrap_key(data, passphrase, key_file_id, where)
        except WrongPassphrase:
            continue
        except IntegrityError as exc:
            malformed = exc
    if malformed is not None and len(key_file_ids) == 1:
        raise malformed
    raise _wrong(where)


def open_repository_key(backend: Backend, passphrase: str) -> Key:
    """The master key opened by ``passphrase`` (WrongPassphrase when none fits)."""
    return find_key(backend, passphrase)[1]


def remove_key(backend: Backend, key_file_id: bytes, *, in_use: bytes | None = None) -> None:
    """Delete one key file; refuses to delete the last one (Conflict), the one the caller
    opened the repository with (``in_use``; Conflict) or a missing one (NotFound)."""
    present = list_key_files(backend)
    if key_file_id not in present:
        raise NotFound("key file", key_file_id.hex(), "list the repository's keys")
    if len(present) == 1:
        raise Conflict(
            f"refusing to remove the last key of repository {backend.display}",
            "add another passphrase first; without a key the data cannot be decrypted",
        )
    if key_file_id == in_use:
        raise Conflict(
            f"refusing to remove key {ids.short(key_file_id)} of repository "
            f"{backend.display}: it is the passphrase in use",
            "open the repository with another of its passphrases to remove this one",
        )
    backend.delete(ids.key_file_key(key_file_id))
