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
from common.errors import InvalidInput, NotFound
from common.repository.core.keys import WrongPassphrase
from common.storage.memory import MemoryBackend


def embedded(home: Path, **kw: object) -> Settings:
    return Settings(home=home, repository_kdf_n=1024, **kw)  # type: ignore[arg-type]


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
    open_repo(backend, embedded(tmp_path, repository_password=SecretStr("mine")), create=True)
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
    fleet = Settings(home=tmp_path, database_url="postgresql://x/y", repository_kdf_n=1024)
    with pytest.raises(InvalidInput) as e:
        open_repo(MemoryBackend("t"), fleet, create=True)
    assert "VOLKEEPER_REPOSITORY_PASSWORD" in e.value.hint
    assert not (tmp_path / AUTO_KEY_FILE).exists()
