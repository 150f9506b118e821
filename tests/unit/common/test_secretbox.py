"""Target credentials are sealed at rest with VOLKEEPER_SECRET_KEY (or the embedded key file)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from common.config import Settings
from common.errors import InvalidInput
from common.secretbox import KEY_FILE, SEALED, _fernet, seal, unseal

CREDS = {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "wJalrXUtnFEMI-very-secret"}


def fleet(tmp_path: Path, key: str | None) -> Settings:
    return Settings(home=tmp_path, database_url="postgresql://x/y",
                    secret_key=SecretStr(key) if key else None)


def test_sealed_credentials_hold_no_plaintext_and_unseal_to_the_original(tmp_path: Path) -> None:
    settings = fleet(tmp_path, "k" * 40)
    stored = seal(CREDS, settings)
    text = json.dumps(stored)
    assert SEALED in stored
    assert "AKIAEXAMPLE" not in text and "very-secret" not in text
    assert unseal(stored, settings) == CREDS
    assert seal({}, settings) == {}


def test_another_key_cannot_unseal_and_the_error_says_what_to_fix(tmp_path: Path) -> None:
    stored = seal(CREDS, fleet(tmp_path, "first-key-" + "a" * 32))
    with pytest.raises(InvalidInput) as e:
        unseal(stored, fleet(tmp_path, "second-key-" + "a" * 32), "offsite")
    assert "'offsite'" in str(e.value) and "VOLKEEPER_SECRET_KEY" in e.value.hint
    assert "very-secret" not in str(e.value)
    with pytest.raises(InvalidInput) as e:
        unseal(stored, fleet(tmp_path, None), "offsite")
    assert "VOLKEEPER_SECRET_KEY" in e.value.hint


def test_fleet_mode_without_a_key_refuses_to_store_credentials(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as e:
        seal(CREDS, fleet(tmp_path, None))
    assert "VOLKEEPER_SECRET_KEY" in e.value.hint


def test_rows_from_before_sealing_are_still_read(tmp_path: Path) -> None:
    assert unseal(dict(CREDS), fleet(tmp_path, None)) == CREDS


def test_embedded_mode_creates_a_private_key_file_once_and_reuses_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stored = seal(CREDS, Settings(home=home))
    key_file = home / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_text()
    assert unseal(stored, Settings(home=home)) == CREDS
    assert key_file.read_text() == first
    with pytest.raises(InvalidInput):  # another home has another key
        unseal(stored, Settings(home=tmp_path / "other"))


def test_a_secret_key_shorter_than_32_characters_cannot_seal(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="31 characters, at least 32") as e:
        seal(CREDS, fleet(tmp_path, "k" * 31))
    assert "openssl rand -hex 32" in (e.value.hint or "")
    assert unseal(seal(CREDS, fleet(tmp_path, "k" * 32)), fleet(tmp_path, "k" * 32)) == CREDS


def test_the_key_is_derived_with_hkdf_not_one_sha256_of_the_secret(tmp_path: Path) -> None:
    settings = fleet(tmp_path, "k" * 40)
    stored = seal(CREDS, settings)
    assert stored[SEALED] == "v2"
    legacy = _fernet("k" * 40, "v1")
    with pytest.raises(Exception):  # noqa: B017 - any failure: the old key does not open it
        legacy.decrypt(stored["token"].encode())


def test_credentials_sealed_with_the_old_derivation_are_read_and_resealed_on_save(
        tmp_path: Path) -> None:
    short = fleet(tmp_path, "an old short key")  # v1 accepted any length
    token = _fernet("an old short key", "v1").encrypt(json.dumps(CREDS).encode())
    old = {SEALED: "v1", "token": token.decode()}
    assert unseal(old, short, "offsite") == CREDS
    longer = fleet(tmp_path, "an old short key, now long enough!")
    with pytest.raises(InvalidInput, match="different VOLKEEPER_SECRET_KEY"):
        unseal(old, longer, "offsite")
    saved = seal(unseal(old, short), longer)  # what saving the target again stores
    assert saved[SEALED] == "v2" and unseal(saved, longer) == CREDS
