"""The worker runs as root by design (deploy/README.md): Celery's warning about root is
silenced — and only that one of Celery's security warnings."""

from __future__ import annotations

import os
import warnings

import pytest
from celery import platforms

from workers.worker import quiet_root_warning


def _warnings_as_root(monkeypatch: pytest.MonkeyPatch, *, known_group: bool = True
                      ) -> list[str]:
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    if not known_group:
        def unknown(gid: int) -> object:
            raise KeyError(gid)
        monkeypatch.setattr(platforms.grp, "getgrgid", unknown)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_root_warning()
        platforms.check_privileges(["json"])
    return [str(w.message) for w in seen]


def test_the_root_warning_is_silenced(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _warnings_as_root(monkeypatch) == []


def test_other_security_warnings_still_show(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _warnings_as_root(monkeypatch, known_group=False)
    assert any("assuming" in m.lower() for m in shown), shown
