"""Where the repository passphrase comes from: the environment, a key file, or — embedded
only — a generated key file in VOLKEEPER_HOME that the first repository creation writes."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from common.config import Settings
from common.engine.repo import AUTO_KEY_FILE, open_repo
from common.engine.repo_admin import new_key
from common.errors import InvalidInput, NotFound
from common.repository.core.keys import KdfParams, WrongPassphrase
from common.repository.core.repository import init_repository
from common.storage.memory import MemoryBackend


def embedded(home: Path, **kw: object) -> Settings:
    return Settings(home=home, repository_kdf_n=2**14, **kw)  # type: ignore[arg-type]


def test_embedded_mode_generates_a_private_key_file_once_and_says_where(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    backend = MemoryBackend("t")
    with pytest.raises((InvalidInput, NotFound)):  # opening (not creating) never generates one
        open_repo(backend, embedded(tmp_path), create=False)
    assert not (tmp_path / AUTO_KEY_FILE).exists()
    with caplog.at_level(logging.WARNING):
        repo = open_repo(backend, embedded(tmp_path), create=True)
    key_file = tmp_path / AUTO_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(key_file) in caplog.text and "keep a copy" in caplog.text
    assert repo.config.encrypted
    first = key_file.read_text()
    again = open_repo(backend, embedded(tmp_path), create=True)
    assert key_file.read_text() == first and again.config.repository_id == repo.config.repository_id


def test_a_configured_passphrase_wins_over_the_generated_file(tmp_path: Path) -> None:
    backend = MemoryBackend("t")
    mine = SecretStr("mine, long enough")
    open_repo(backend, embedded(tmp_path, repository_password=mine), create=True)
    assert not (tmp_path / AUTO_KEY_FILE).exists()
    with pytest.raises(WrongPassphrase):
        open_repo(backend, embedded(tmp_path / "other", repository_password=SecretStr("no")))


def test_a_lost_generated_key_file_is_named_when_the_repository_does_not_open(
        tmp_path: Path) -> None:
    backend = MemoryBackend("t")
    open_repo(backend, embedded(tmp_path / "a"), create=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / AUTO_KEY_FILE).write_text("some other passphrase\n")
    with pytest.raises(WrongPassphrase) as e:
        open_repo(backend, embedded(tmp_path / "b"))
    assert AUTO_KEY_FILE in str(e.value)


def test_the_fleet_never_generates_a_passphrase(tmp_path: Path) -> None:
    fleet = Settings(home=tmp_path, database_url="postgresql://x/y", repository_kdf_n=2**14)
    with pytest.raises(InvalidInput) as e:
        open_repo(MemoryBackend("t"), fleet, create=True)
    assert "VOLKEEPER_REPOSITORY_PASSWORD" in e.value.hint
    assert not (tmp_path / AUTO_KEY_FILE).exists()


def test_a_new_repository_refuses_a_short_passphrase_but_an_existing_one_still_opens(
        tmp_path: Path) -> None:
    backend = MemoryBackend("t")
    short = embedded(tmp_path, repository_password=SecretStr("short pw"))
    with pytest.raises(InvalidInput, match=r"too short \(8 characters; at least 12") as err:
        open_repo(backend, short, create=True)
    assert "longer" in (err.value.hint or "")
    assert list(backend.list("")) == []  # nothing was created
    init_repository(backend, "short pw", kdf=KdfParams(n=2**10))  # made before the rule
    assert open_repo(backend, short, create=True).config.encrypted


def test_adding_a_short_passphrase_or_configuring_a_weak_scrypt_cost_is_refused(
        tmp_path: Path) -> None:
    backend = MemoryBackend("t")
    settings = embedded(tmp_path, repository_password=SecretStr("first passphrase"))
    open_repo(backend, settings, create=True)
    with pytest.raises(InvalidInput, match="too short"):
        new_key(backend, settings, "tiny")
    weak = settings.model_copy(update={"repository_kdf_n": 2**10})
    with pytest.raises(InvalidInput, match=r"scrypt N=1024 .* the minimum is 16384"):
        new_key(backend, weak, "another long passphrase")
    with pytest.raises(InvalidInput, match="too weak"):
        open_repo(MemoryBackend("u"), weak, create=True)
    assert new_key(backend, settings, "another long passphrase")["added"]


def test_backups_starting_together_all_get_the_generated_passphrase(tmp_path: Path) -> None:
    """Two first backups at once (a policy's burst): the key file appears whole, so the
    one that finds it never reads it empty; all get the same passphrase."""
    import threading

    from common.engine.repo import _generate_auto_key, passphrase

    path, got, errors = tmp_path / AUTO_KEY_FILE, [], []
    start = threading.Barrier(8)

    def one(k: int) -> None:
        start.wait()
        try:
            got.append(_generate_auto_key(path, "t") if k % 2 else
                       passphrase(embedded(tmp_path)) or _generate_auto_key(path, "t"))
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(got)) == 1 and len(got) == 8
    assert path.read_text() == got[0] + "\n" and list(tmp_path.iterdir()) == [path]
