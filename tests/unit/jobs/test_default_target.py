"""VOLKEEPER_DEFAULT_TARGET: embedded mode creates the built-in ``local`` target at
``$VOLKEEPER_HOME/backups`` by itself; any other name must be a registered target, and a
name that is not one (a typo) is a clear error, never a second name for the same place."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import Settings
from common.db import catalog
from common.errors import NotFound
from common.jobs.backup_checks import require_target
from common.jobs.embedded import EmbeddedRuntime

NO_DOCKER = "unix:///nonexistent/docker.sock"


def _settings(tmp_path: Path, **extra: str) -> Settings:
    return Settings(home=tmp_path, host_name="h1", docker_host=NO_DOCKER, **extra)


def _targets(rt: EmbeddedRuntime) -> list[str]:
    with rt.db.session() as s:
        return [t.name for t in catalog.list_targets(s)]


def test_the_first_run_creates_the_builtin_local_target(tmp_path: Path) -> None:
    with EmbeddedRuntime(_settings(tmp_path), background=False) as rt:
        assert _targets(rt) == ["local"]


def test_a_mistyped_default_target_creates_no_second_target(tmp_path: Path) -> None:
    with EmbeddedRuntime(_settings(tmp_path), background=False):
        pass
    with EmbeddedRuntime(_settings(tmp_path, default_target="locl"), background=False) as rt:
        assert _targets(rt) == ["local"]


def test_a_backup_to_a_mistyped_default_target_names_the_setting_and_the_targets(
        tmp_path: Path) -> None:
    with EmbeddedRuntime(_settings(tmp_path), background=False) as rt, \
            rt.db.session() as s, pytest.raises(NotFound) as raised:
        require_target(s, "locl", default="locl")
    e = raised.value
    assert e.message == "target 'locl' not found"
    assert "VOLKEEPER_DEFAULT_TARGET" in (e.hint or "")
    assert "registered targets are: local;" in (e.hint or "")
    assert "volkeeper targets add locl URL" in (e.hint or "")
    assert "\n" not in str(e)


def test_a_named_target_that_is_missing_lists_the_registered_ones(tmp_path: Path) -> None:
    with EmbeddedRuntime(_settings(tmp_path), background=False) as rt, \
            rt.db.session() as s, pytest.raises(NotFound) as raised:
        require_target(s, "s3", default="local")
    hint = raised.value.hint or ""
    assert "VOLKEEPER_DEFAULT_TARGET" not in hint and "targets are: local." in hint
