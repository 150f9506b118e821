"""A bad VOLKEEPER_* variable is one clear message naming the variable, not pydantic's
report (field names, banner, documentation links)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli.errors import CliError
from cli.settings import settings
from common.config import get_settings


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_bad_variables_are_named_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLKEEPER_DEFAULT_FORMAT", "zip")
    monkeypatch.setenv("VOLKEEPER_ZSTD_LEVEL", "abc")
    with pytest.raises(CliError) as e:
        settings()
    msg = e.value.message
    assert msg.startswith("invalid configuration: ")
    assert "VOLKEEPER_DEFAULT_FORMAT='zip': Input should be 'tar'" in msg
    assert "VOLKEEPER_ZSTD_LEVEL='abc': Input should be a valid integer" in msg
    assert "\n" not in msg and "errors.pydantic.dev" not in msg
    assert "validation error for Settings" not in msg


def test_good_settings_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLKEEPER_DEFAULT_FORMAT", "tar.zst")
    assert settings().default_format == "tar.zst"
