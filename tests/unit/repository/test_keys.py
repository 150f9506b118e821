"""Key files and opening repositories: passphrases, several keys, config protection."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from common.errors import Conflict, IntegrityError, InvalidInput, NotFound
from common.repository import ids
from common.repository.core import keys, locks
from common.repository.core.crypto import Key
from common.repository.core.keys import KdfParams, WrongPassphrase
from common.repository.core.repository import (
    Repository,
    init_repository,
    open_or_init_repository,
    open_repository,
)
from common.repository.maintenance import keyring
from common.storage.base import Backend, ObjectInfo, ObjectWriter
from common.storage.local import LocalBackend
from common.storage.memory import MemoryBackend

FAST = KdfParams(n=2**10, r=8, p=1)  # production uses 2**17; tests stay fast


def _snapshot(backend: MemoryBackend) -> dict[str, int]:
    return {o.key: o.size for o in backend.list()}


def test_a_wrapped_key_opens_with_its_passphrase_only() -> None:
    master = Key.new()
    data = keys.wrap_key(master, "correct horse", b"k" * 32, FAST)
    assert keys.unwrap_key(data, "correct horse", b"k" * 32, "memory://x") == master
    with pytest.raises(WrongPassphrase) as exc:
        keys.unwrap_key(data, "wrong", b"k" * 32, "memory://x")
    assert exc.value.message == "wrong passphrase for repository memory://x"
    assert "VOLKEEPER_REPOSITORY_PASSWORD" in (exc.value.hint or "")
    doc = json.loads(data)
    assert (doc["kdf"], doc["n"], doc["r"], doc["p"]) == ("scrypt", 2**10, 8, 1)
    assert master.enc_key.hex() not in data.decode()


def test_wrong_passphrase_is_a_clear_error_and_nothing_is_written() -> None:
    backend = MemoryBackend()
    init_repository(backend, "right", kdf=FAST)
    before = _snapshot(backend)
    with pytest.raises(WrongPassphrase, match="wrong passphrase for repository memory://"):
        open_repository(backend, "wrong")
    with pytest.raises(WrongPassphrase):
        keys.open_repository_key(backend, "wrong")
    assert _snapshot(backend) == before


def test_several_passphrases_open_the_same_master_key_and_can_be_removed() -> None:
    backend = MemoryBackend()
    repo = init_repository(backend, "first", kdf=FAST)
    second = keys.add_key(backend, repo.key, "second", FAST)
    assert keys.open_repository_key(backend, "second") == repo.key
    assert open_repository(backend, "first").key == repo.key
    first_id, _ = keys.find_key(backend, "first")
    keys.remove_key(backend, first_id)
    with pytest.raises(WrongPassphrase):
        keys.open_repository_key(backend, "first")
    assert keys.list_key_files(backend) == [second]
    assert open_repository(backend, "second").key == repo.key


def test_the_last_key_cannot_be_removed() -> None:
    backend = MemoryBackend()
    init_repository(backend, "only", kdf=FAST)
    (only,) = keys.list_key_files(backend)
    with pytest.raises(Conflict, match="last key"):
        keys.remove_key(backend, only)
    assert keys.list_key_files(backend) == [only]
    with pytest.raises(NotFound):
        keys.remove_key(backend, b"\x00" * 32)


def test_hostile_scrypt_parameters_in_a_key_file_are_refused() -> None:
    backend = MemoryBackend()
    init_repository(backend, "pw", kdf=FAST)
    (kid,) = keys.list_key_files(backend)
    doc = json.loads(backend.get_bytes(ids.key_file_key(kid)))
    doc["n"] = 2**30
    backend.put_bytes(ids.key_file_key(kid), json.dumps(doc).encode())
    with pytest.raises(IntegrityError, match="malformed"):
        keys.open_repository_key(backend, "pw")


def test_a_damaged_or_missing_key_file_is_not_reported_as_a_wrong_passphrase() -> None:
    backend = MemoryBackend()
    init_repository(backend, "pw", kdf=FAST)
    (kid,) = keys.list_key_files(backend)
    key = ids.key_file_key(kid)
    good = backend.get_bytes(key)
    backend.put_bytes(key, good[:20])  # truncated
    with pytest.raises(IntegrityError, match="malformed") as exc:
        open_repository(backend, "pw")
    assert not isinstance(exc.value, WrongPassphrase) and "keys/" in (exc.value.hint or "")
    backend.delete(key)
    with pytest.raises(IntegrityError, match="has no key file") as exc:
        open_repository(backend, "pw")
    assert not isinstance(exc.value, WrongPassphrase)
    backend.put_bytes(key, good)
    assert open_repository(backend, "pw").key_file_id == kid
    with pytest.raises(WrongPassphrase):
        open_repository(backend, "wrong")


def test_an_encrypted_repository_round_trips_its_config() -> None:
    backend = MemoryBackend()
    repo = init_repository(backend, "pw", kdf=FAST, pack_size=8 << 20, zstd_level=5)
    again = open_repository(backend, "pw")
    assert again.config == repo.config and again.config.encrypted
    assert again.chunker().params == repo.config.chunker
    with pytest.raises(Conflict, match="already exists"):
        init_repository(backend, "pw", kdf=FAST)


def test_a_repository_is_unencrypted_only_on_explicit_request() -> None:
    backend = MemoryBackend()
    with pytest.raises(InvalidInput, match="needs a passphrase"):
        init_repository(backend, None)
    assert _snapshot(backend) == {}
    repo = init_repository(backend, None, unencrypted=True)
    assert not repo.config.encrypted and keys.list_key_files(backend) == []
    assert open_repository(backend, None).key == repo.key
    with pytest.raises(Conflict, match="unencrypted but a passphrase was given"):
        open_repository(backend, "pw")


def test_a_config_switched_to_no_encryption_is_refused() -> None:
    backend = MemoryBackend()
    repo = init_repository(backend, "pw", kdf=FAST)
    doc = json.loads(backend.get_bytes(ids.CONFIG_KEY))
    doc["encryption"] = "none"
    doc["master_key"] = Key.new().to_bytes().hex()
    backend.put_bytes(ids.CONFIG_KEY, json.dumps(doc).encode())
    with pytest.raises(IntegrityError, match="failed to authenticate"):
        open_repository(backend, None)
    doc["encryption"] = "aes-256-gcm"
    doc["pack_size"] = 1
    backend.put_bytes(ids.CONFIG_KEY, json.dumps(doc).encode())
    with pytest.raises(IntegrityError, match="failed to authenticate"):
        open_repository(backend, "pw")
    assert repo.config.pack_size != 1


def test_opening_a_missing_repository_says_how_to_create_it() -> None:
    with pytest.raises(NotFound, match="repository"):
        open_repository(MemoryBackend(), "pw")


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_hosts_initialising_one_empty_target_at_once_share_exactly_one_repository(
    kind: str, tmp_path: Path
) -> None:
    backend: Backend = MemoryBackend() if kind == "memory" else LocalBackend(tmp_path / "t")
    start = threading.Barrier(6)
    opened: dict[int, Repository] = {}
    errors: list[BaseException] = []

    def host(i: int) -> None:
        start.wait()
        try:
            opened[i] = open_or_init_repository(backend, "pw", kdf=FAST)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=host, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 6, errors
    assert [o.key for o in backend.list(ids.CONFIG_KEY)] == [ids.CONFIG_KEY]
    final = open_repository(backend, "pw")
    # every host uses the winner's key and config; the losers' key files are gone
    assert {r.key for r in opened.values()} == {final.key}
    assert {r.config.repository_id for r in opened.values()} == {final.config.repository_id}
    assert keys.list_key_files(backend) == [final.key_file_id]


def test_initialising_a_target_that_has_a_repository_is_a_conflict_and_writes_nothing() -> None:
    backend = MemoryBackend()
    init_repository(backend, "pw", kdf=FAST)
    before = _snapshot(backend)
    with pytest.raises(Conflict, match="already exists"):
        init_repository(backend, "pw", kdf=FAST)
    assert _snapshot(backend) == before


def test_an_initialisation_that_loses_the_race_for_the_config_removes_its_key_file() -> None:
    backend = MemoryBackend()

    class Racing(MemoryBackend):
        """Another host's config lands between our stat and our put."""

        def put_bytes_if_absent(self, key: str, data: bytes) -> ObjectInfo:
            if key == ids.CONFIG_KEY:
                init_repository(backend, "pw", kdf=FAST)
            return backend.put_bytes_if_absent(key, data)

        def open_writer(self, key: str) -> ObjectWriter:
            return backend.open_writer(key)

        def delete(self, key: str) -> None:
            backend.delete(key)

        def stat(self, key: str) -> ObjectInfo:
            return backend.stat(key)

    winner_keys_before = keys.list_key_files(backend)
    assert winner_keys_before == []
    with pytest.raises(Conflict):
        init_repository(Racing(), "pw", kdf=FAST)
    winner = open_repository(backend, "pw")
    assert keys.list_key_files(backend) == [winner.key_file_id]


def test_adding_a_passphrase_needs_the_opened_repository_and_the_new_one_opens_it() -> None:
    backend = MemoryBackend()
    init_repository(backend, "current", kdf=FAST)
    with pytest.raises(WrongPassphrase):  # no way in without a current passphrase
        open_repository(backend, "not it")
    repo = open_repository(backend, "current")
    added = keyring.add_passphrase(repo, "added", kdf=FAST)
    reopened = open_repository(backend, "added")
    assert reopened.key == repo.key and reopened.key_file_id == added
    listed = {k.id: k for k in keyring.list_keys(repo)}
    assert set(listed) == {repo.key_file_id, added}
    assert listed[repo.key_file_id].in_use and not listed[added].in_use
    with pytest.raises(InvalidInput):
        keyring.add_passphrase(repo, "", kdf=FAST)


def test_removing_the_key_in_use_or_the_last_key_is_refused_with_a_clear_error() -> None:
    backend = MemoryBackend()
    repo = init_repository(backend, "first", kdf=FAST)
    assert repo.key_file_id is not None
    with pytest.raises(Conflict, match="last key") as last:
        keyring.remove_passphrase(repo, repo.key_file_id)
    assert last.value.hint and "add another passphrase" in last.value.hint
    second = keyring.add_passphrase(repo, "second", kdf=FAST)
    with pytest.raises(Conflict, match="passphrase in use") as in_use:
        keyring.remove_passphrase(repo, repo.key_file_id)
    assert in_use.value.hint and "another of its passphrases" in in_use.value.hint
    assert len(keys.list_key_files(backend)) == 2
    via_second = open_repository(backend, "second")
    keyring.remove_passphrase(via_second, repo.key_file_id)
    assert keys.list_key_files(backend) == [second]
    with pytest.raises(WrongPassphrase):
        open_repository(backend, "first")
    with pytest.raises(NotFound):
        keyring.remove_passphrase(via_second, repo.key_file_id)
    with pytest.raises(Conflict, match="last key"):
        keyring.remove_passphrase(via_second, second)
    assert locks.list_locks(via_second) == []


def test_removing_a_key_waits_for_no_backup_and_unencrypted_repositories_have_none() -> None:
    backend = MemoryBackend()
    repo = init_repository(backend, "first", kdf=FAST)
    second = keyring.add_passphrase(repo, "second", kdf=FAST)
    with locks.backup_lock(repo, "backup job 1"), pytest.raises(Conflict, match="backup job 1"):
        keyring.remove_passphrase(repo, second)
    assert second in keys.list_key_files(backend)
    plain = init_repository(MemoryBackend(), None, unencrypted=True)
    with pytest.raises(InvalidInput, match="unencrypted"):
        keyring.add_passphrase(plain, "x", kdf=FAST)


def test_a_passphrase_is_stretched_once_per_process_and_a_wrong_one_still_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keymod = keys
    calls: list[bytes] = []
    real = keymod.Scrypt

    def counting_scrypt(**kwargs: Any) -> Any:
        inner = real(**kwargs)

        class Counting:
            def derive(self, key_material: bytes) -> bytes:
                calls.append(key_material)
                return inner.derive(key_material)

        return Counting()

    monkeypatch.setattr(keymod, "Scrypt", counting_scrypt)
    backend = MemoryBackend()
    master = Key.new()
    keymod.add_key(backend, master, "cached-pass", keymod.KdfParams(n=2**10))
    for _ in range(3):
        assert keymod.open_repository_key(backend, "cached-pass").to_bytes() == master.to_bytes()
    assert calls == [b"cached-pass"]  # wrap_key derived it; every open reused it
    with pytest.raises(keymod.WrongPassphrase):
        keymod.open_repository_key(backend, "other-pass")
    with pytest.raises(keymod.WrongPassphrase):
        keymod.open_repository_key(backend, "other-pass")
    assert calls == [b"cached-pass", b"other-pass"]
