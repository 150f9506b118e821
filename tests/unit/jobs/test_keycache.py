"""The embedded key cache: a later process opens the repository without scrypt, but only
with the right passphrase; the file is private and holds nothing usable on its own."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import derived_keys
from common.config import Settings
from common.jobs import keycache
from common.repository.core import keys
from common.repository.core.keys import KdfParams, WrongPassphrase
from common.repository.core.repository import init_repository
from common.storage.memory import MemoryBackend

FAST = KdfParams(n=2**10, r=8, p=1)
SECRET = "s" * 64


@pytest.fixture(autouse=True)
def _fresh_process() -> Iterator[None]:
    """Each test starts like a new process: no in-memory derived keys, no store."""
    keys._DERIVED.clear()
    derived_keys.use_store(None)
    yield
    keys._DERIVED.clear()
    derived_keys.use_store(None)


def _new_process(monkeypatch: pytest.MonkeyPatch, cache: Any) -> list[int]:
    """Forget this process's derived keys, use ``cache``; returns the scrypt call log."""
    keys._DERIVED.clear()
    derived_keys.use_store(cache)
    calls: list[int] = []
    real = keys.Scrypt

    def counting(**kw: Any) -> Any:
        calls.append(kw["n"])
        return real(**kw)

    monkeypatch.setattr(keys, "Scrypt", counting)
    return calls


def test_a_later_process_opens_the_repository_without_scrypt_with_the_same_passphrase(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = MemoryBackend()
    cache = keycache.FileKeyCache(tmp_path / keycache.FILE, SECRET, ttl=3600)
    derived_keys.use_store(cache)
    init_repository(backend, "correct horse battery", kdf=FAST)
    master = keys.open_repository_key(backend, "correct horse battery")

    calls = _new_process(monkeypatch, cache)
    assert keys.open_repository_key(backend, "correct horse battery") == master
    assert calls == []  # the derived key came from the file

    calls = _new_process(monkeypatch, cache)
    with pytest.raises(WrongPassphrase):
        keys.open_repository_key(backend, "wrong horse battery")
    assert calls == [FAST.n]  # a wrong passphrase names no entry: derived (and refused)


def test_the_file_is_private_and_holds_neither_passphrase_nor_derived_key(
        tmp_path: Path) -> None:
    path = tmp_path / keycache.FILE
    cache = keycache.FileKeyCache(path, SECRET, ttl=3600)
    derived = os.urandom(32)
    cache.put(b"k" * 32, derived)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert derived.hex().encode() not in raw and derived not in raw
    assert cache.get(b"k" * 32) == derived
    assert cache.get(b"x" * 32) is None
    # another installation's secret cannot read it
    assert keycache.FileKeyCache(path, "t" * 64, ttl=3600).get(b"k" * 32) is None


def test_expired_damaged_and_missing_entries_are_misses_and_a_put_repairs_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / keycache.FILE
    cache = keycache.FileKeyCache(path, SECRET, ttl=60)
    cache.put(b"a" * 32, b"1" * 32)
    now = keycache.time.time()
    monkeypatch.setattr(keycache.time, "time", lambda: now + 61)
    assert cache.get(b"a" * 32) is None
    monkeypatch.undo()

    doc = json.loads(path.read_text())
    name = next(iter(doc))
    doc[name][1] = "00" * 60  # flipped ciphertext
    path.write_text(json.dumps(doc))
    assert cache.get(b"a" * 32) is None
    path.write_text("{not json")
    assert cache.get(b"a" * 32) is None
    cache.put(b"b" * 32, b"2" * 32)
    assert cache.get(b"b" * 32) == b"2" * 32


def test_a_removed_key_file_is_not_opened_through_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = MemoryBackend()
    cache = keycache.FileKeyCache(tmp_path / keycache.FILE, SECRET, ttl=3600)
    derived_keys.use_store(cache)
    init_repository(backend, "first passphrase", kdf=FAST)
    master = keys.open_repository_key(backend, "first passphrase")
    first_id, _ = keys.find_key(backend, "first passphrase")
    second_id = keys.add_key(backend, master, "second passphrase", FAST)
    keys.remove_key(backend, first_id, in_use=second_id)

    _new_process(monkeypatch, cache)
    with pytest.raises(WrongPassphrase):
        keys.open_repository_key(backend, "first passphrase")


def test_the_cache_is_used_only_in_embedded_mode_with_a_positive_ttl(tmp_path: Path) -> None:
    embedded = Settings(home=tmp_path, database_url=None)
    assert embedded.mode == "embedded"
    keycache.install(embedded)
    assert derived_keys.current_store() is not None
    keycache.install(Settings(home=tmp_path, key_cache_ttl=0))
    assert derived_keys.current_store() is None
    keycache.install(Settings(home=tmp_path, database_url="postgresql://x/y"))
    assert derived_keys.current_store() is None
