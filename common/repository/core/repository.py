"""An opened repository, which owns its index; creating and opening one.

A ``Repository`` is what every operation is handed: the backend, the config, the master
key and the codecs made from them, and the repository's index. ``load_index`` reads every
index file into one in-memory ``Index`` (damaged index files are reported, not fatal, so
check can name them and a backup can still proceed — it will just store again what those
files described); each operation loads it afresh where it starts, and ``index`` loads it
on first use. ``read_blob`` and ``read_tree`` find a blob through the index, read it from
its pack and decode (and verify) it; ``write_index_file`` writes the entries of committed
packs.

Creating writes the key file first and the config last, with ``put_bytes_if_absent``: a
repository exists once its config does, and of two hosts initialising the same empty
target at once exactly one config lands; the loser removes its key file and gets Conflict
(``open_or_init_repository`` then opens the winner's).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from common.errors import Conflict, IntegrityError, InvalidInput, NotFound
from common.repository.core import ids, keys
from common.repository.core.blob import DEFAULT_ZSTD_LEVEL, BlobCodec
from common.repository.core.chunker import DEFAULT_CHUNKER, Chunker, ChunkerParams
from common.repository.core.config import (
    RepositoryConfig,
    authentic,
    check_authentic,
    decode_config,
    encode_config,
)
from common.repository.core.crypto import Cipher, Key, cipher_for
from common.repository.core.damage import Damage, read_damage
from common.repository.core.ids import BlobType
from common.repository.core.index import (
    Index,
    IndexEntry,
    IndexFile,
    encode_index,
    load_index_file,
)
from common.repository.core.pack import DEFAULT_PACK_SIZE, read_blob
from common.repository.core.tree import Tree
from common.storage.base import Backend

_PASS_HINT = "set VOLKEEPER_REPOSITORY_PASSWORD or the target's key file"
_HINT = "`volkeeper repair TARGET --read-data --dry-run` shows what is damaged"
#: ``load_index(reuse=True)``: the index a backup kept (``remember_index``: one that another
#: follows, a migration's catch-up) or a load inside ``reusing_index`` (a migration's
#: destination), by repository (backend, repository id): the index files it holds
#: exactly, and a copy of it. One repository's, of at most ``REUSE_MAX_ENTRIES`` blobs
#: (~50 bytes each); nothing else keeps a copy (a one-shot command's peak memory is
#: unchanged)
_LOADED: dict[tuple[str, bytes], tuple[frozenset[bytes], Index]] = {}
_LOADED_LOCK = threading.Lock()
REUSE_MAX_ENTRIES = 1_000_000


_reusing: contextvars.ContextVar[bool] = contextvars.ContextVar("reuse_index", default=False)


@contextlib.contextmanager
def reusing_index() -> Iterator[None]:
    """Index loads in this block (this thread) reuse the index kept in this process and
    keep what they load (``load_index(reuse=True)``; a clean load is kept as
    ``remember_index`` keeps a backup's): a migration's destination, whose pre-copy
    restore and syncs of one repository follow each other on one worker — the cut-over's
    apply, inside the downtime, then reads only the index files added since (the catch-up's
    and the final backup's) instead of every one (~0.06 s for the 1 GiB mixed set)."""
    token = _reusing.set(True)
    try:
        yield
    finally:
        _reusing.reset(token)


def forget_kept_index() -> None:
    """Drop the index a backup kept (``remember_index``): with the trees it kept
    (``backup.kept.drop``), so a worker holds neither once no backup follows."""
    with _LOADED_LOCK:
        _LOADED.clear()


@dataclass
class LoadedIndex:
    """The merged index plus what could not be read."""

    index: Index
    files: list[bytes] = field(default_factory=list)
    damaged: dict[bytes, str] = field(default_factory=dict)
    #: What damage marks say (``core/damage.py``), and the indexed copies they left out.
    marks: Damage = field(default_factory=Damage)
    quarantined: list[IndexEntry] = field(default_factory=list)
    #: Damage marks that could not be read (id -> why).
    damaged_marks: dict[bytes, str] = field(default_factory=dict)


@dataclass
class Repository:
    """An opened repository: its backend, config, master key and codecs, and its index."""

    backend: Backend
    config: RepositoryConfig
    key: Key
    #: The key file the passphrase opened (None for unencrypted repositories).
    key_file_id: bytes | None = None
    cipher: Cipher = field(init=False)
    codec: BlobCodec = field(init=False)
    _index: Index | None = field(default=None, init=False, repr=False, compare=False)
    #: Copies of blobs that damage marks left out of the index (blob id -> entry).
    quarantined: dict[bytes, IndexEntry] = field(default_factory=dict, init=False,
                                                 repr=False, compare=False)
    #: The damage marks the index was last loaded with.
    damage: Damage = field(default_factory=Damage, init=False, repr=False, compare=False)
    #: The index files the index holds exactly (a clean ``load_index(reuse=True)``), else
    #: None
    _index_files: frozenset[bytes] | None = field(default=None, init=False, repr=False,
                                                  compare=False)

    def __post_init__(self) -> None:
        self.cipher = cipher_for(self.key, self.config.encrypted)
        self.codec = BlobCodec(self.key, self.config.encrypted, self.config.zstd_level)

    def chunker(self) -> Chunker:
        """A new chunker with the repository's sizes and secret seed (one per thread)."""
        return Chunker(self.config.chunker, self.key.chunker_seed)

    @property
    def index(self) -> Index:
        """The index blobs are read through: the one last loaded (``load_index``) or set;
        loaded from storage on first use."""
        if self._index is None:
            return self.load_index().index
        return self._index

    @index.setter
    def index(self, index: Index) -> None:
        self._index = index
        self._index_files = None

    def load_index(self, reuse: bool = False) -> LoadedIndex:
        """(Re)read every index file into one ``Index``, which the repository then reads
        through; damaged files are listed, not fatal.

        ``reuse`` (a backup): start from the index a backup of this repository kept in
        this process (``remember_index``, ``_LOADED``) when each of its index files is
        still listed, and read only the files added since. Index files never change
        once written (a prune or a repair writes new ones and deletes the old), so what
        was read from a file still says the same; a file gone, any damage mark or an
        unreadable file means a full read. Never for a check or a repair, which must
        read what storage holds now. Inside ``reusing_index`` every load reuses, and a
        clean one is kept for the next."""
        self._index = None  # the old one goes before the new one is built (memory)
        self._index_files = None
        out = LoadedIndex(Index())
        out.marks, out.damaged_marks = read_damage(self.backend, self.cipher)
        bad: dict[bytes, set[bytes] | None] = dict(out.marks.by_pack())
        bad.update(dict.fromkeys(out.marks.packs))
        listed: list[tuple[bytes, str]] = []
        for info in self.backend.list(ids.INDEX_PREFIX):
            try:
                listed.append((ids.id_from_key(info.key), info.key))
            except Exception:  # noqa: BLE001 - a stray object: report it
                out.damaged[b""] = f"unexpected object {info.key}"
        keep = _reusing.get()
        reuse = reuse or keep
        clean = reuse and not bad and not out.damaged_marks
        known: frozenset[bytes] = frozenset()
        if clean:
            cache = (self.backend.display, self.config.repository_id)
            with _LOADED_LOCK:
                hit = _LOADED.get(cache)
            if hit is not None and hit[0] <= {i for i, _k in listed}:
                known, out.index = hit[0], hit[1].copy()
        for index_id, key in listed:
            out.files.append(index_id)
            if index_id in known:
                continue
            try:
                data = self.backend.get_bytes(key)
                load_index_file(self.cipher, index_id, data, out.index, bad,
                                out.quarantined)
            except (IntegrityError, NotFound) as exc:
                out.damaged[index_id] = str(exc)
        out.index.flush()
        self._index = out.index
        if clean and not out.damaged:
            self._index_files = frozenset(out.files)
            if keep and self._index_files != known:  # (kept already when nothing was new)
                self._keep_index()
        self.quarantined = {e.blob_id: e for e in out.quarantined}
        self.damage = out.marks
        return out

    @property
    def index_files(self) -> frozenset[bytes] | None:
        """The index files the index holds exactly, with no damage mark applied (a clean
        ``load_index(reuse=True)``, plus what ``remember_index`` added), else None."""
        return self._index_files

    def remember_index(self, added: list[bytes]) -> None:
        """(a backup, once every pack it stored is committed and indexed by the index
        files ``added``) The index in memory is now what reading the files it was loaded
        from plus ``added`` gives: kept for the next ``load_index(reuse=True)``."""
        if self._index_files is not None and self._index is not None:
            self._index_files = self._index_files | set(added)
            self._keep_index()

    def _keep_index(self) -> None:
        index, files = self._index, self._index_files
        if index is None or files is None or len(index) > REUSE_MAX_ENTRIES:
            return
        kept = index.copy()
        with _LOADED_LOCK:
            _LOADED.clear()  # one repository's: a worker's memory stays bounded
            _LOADED[(self.backend.display, self.config.repository_id)] = (files, kept)

    def forget_index(self) -> None:
        """Drop the loaded index (it no longer says what is stored); the next use of
        ``index`` reads it again."""
        self._index = None
        self._index_files = None

    def write_index_file(self, entries: list[IndexEntry]) -> bytes | None:
        """Write one new index file listing ``entries``; returns its id (None when empty).
        The in-memory index is not changed: the caller adds what it wrote."""
        if not entries:
            return None
        index_id = ids.random_id()
        self.backend.put_bytes(
            ids.index_key(index_id),
            encode_index(self.cipher, index_id, IndexFile(list(entries))))
        return index_id

    def unindexed(self, blob_id: bytes, what: str = "chunk") -> str:
        """Why ``blob_id`` has no usable copy: a check found it damaged, or no index
        names it."""
        damaged = self.quarantined.get(blob_id)
        if damaged is not None:
            return (f"{what} {blob_id.hex()} was found damaged by a check (pack "
                    f"{damaged.pack_id.hex()}) and no healthy copy is stored")
        return f"{what} {blob_id.hex()} is not in the index"

    def read_blob(self, blob_id: bytes, blob_type: BlobType) -> bytes:
        """Find a blob in the index, read it from its pack and verify it."""
        entry = self.index.lookup(blob_id)
        if entry is None and blob_id in self.quarantined:
            raise IntegrityError(
                f"{blob_type.name.lower()} blob {blob_id.hex()} was found damaged by a check "
                f"(pack {self.quarantined[blob_id].pack_id.hex()}) and no healthy copy is "
                "stored", "run `volkeeper repair` on the target; a new backup of the same "
                "data stores it again")
        if entry is None or entry.blob_type != blob_type:
            raise IntegrityError(
                f"{blob_type.name.lower()} blob {blob_id.hex()} is not in the repository "
                "index", _HINT)
        try:
            return read_blob(self.backend, ids.pack_key(entry.pack_id), entry, self.codec)
        except NotFound:
            raise IntegrityError(
                f"pack {entry.pack_id.hex()} holding {blob_type.name.lower()} blob "
                f"{blob_id.hex()} is missing",
                _HINT,
            ) from None

    def read_tree(self, tree_id: bytes) -> Tree:
        """Load and verify one tree blob."""
        data = self.read_blob(tree_id, BlobType.TREE)
        return Tree.decode(data, f"tree {tree_id.hex()}")


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
    config, doc = decode_config(data, where)
    if not config.encrypted:
        if passphrase:
            raise Conflict(
                f"repository {where} is unencrypted but a passphrase was given",
                "refusing to store data in clear; unset the passphrase if that is intended",
            )
        key = Key.from_bytes(bytes.fromhex(doc.get("master_key", "")))
        check_authentic(config, doc, key, where)
        return Repository(backend, config, key, None)
    if not passphrase:
        raise InvalidInput(
            f"repository {where} is encrypted and no passphrase was given", _PASS_HINT
        )
    opened = wrong = False
    malformed: list[IntegrityError] = []
    for key_file_id in keys.list_key_files(backend):
        try:
            blob = backend.get_bytes(ids.key_file_key(key_file_id))
        except NotFound:
            continue  # removed since we listed (e.g. by an initialisation that lost)
        try:
            key = keys.unwrap_key(blob, passphrase, key_file_id, where)
        except keys.WrongPassphrase:
            wrong = True
            continue
        except IntegrityError as exc:
            malformed.append(exc)
            continue
        opened = True
        if authentic(config, doc, key):
            return Repository(backend, config, key, key_file_id)
    if opened:
        check_authentic(config, doc, None, where)
    if not wrong:  # no key file a passphrase could be tried on: not the passphrase's fault
        if malformed:
            raise IntegrityError(
                f"{malformed[0].message}" + (f" (and {len(malformed) - 1} more key files)"
                                             if len(malformed) > 1 else ""),
                f"restore {ids.KEYS_PREFIX} from a copy of the repository; no passphrase "
                "opens it without a readable key file") from None
        raise IntegrityError(
            f"repository {where} has no key file ({ids.KEYS_PREFIX} is empty)",
            f"restore {ids.KEYS_PREFIX} from a copy of the repository; no passphrase opens "
            "it without a key file")
    raise keys.WrongPassphrase(f"wrong passphrase for repository {where}", _PASS_HINT)

