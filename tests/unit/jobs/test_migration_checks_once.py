"""A same-host migration's checks name the target once: both sides' workers check it
alike ("reachable from host vm"), and the dry run showed that line twice."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import pytest

from common.jobs import migrations
from common.jobs.migration_inputs import MigrationIn
from common.jobs.migrations import MigrationService


def test_a_same_host_migration_lists_the_target_check_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = SimpleNamespace(session=contextlib.nullcontext)
    svc = MigrationService(SimpleNamespace(db=db, settings=None))  # type: ignore[arg-type]
    target = {"name": "target local", "ok": True, "detail": "reachable from host vm"}
    sides = {"source": {"checks": [{"name": "source", "ok": True, "detail": "ok"}, target],
                        "bytes": 10},
             "destination": {"checks": [{"name": "destination", "ok": True,
                                         "detail": "free"}, dict(target)]}}
    monkeypatch.setattr(migrations.catalog, "get_target", lambda s, name: None)
    monkeypatch.setattr(svc, "_host_check", lambda what, name: {"name": what, "ok": True,
                                                                "detail": "online"})
    monkeypatch.setattr(svc, "_busy_check", lambda *a: {"name": "busy", "ok": True,
                                                        "detail": "none"})
    monkeypatch.setattr(svc, "_start_check", lambda host, vol, via, p: (p["side"],))
    monkeypatch.setattr(svc, "_wait_check", lambda side: dict(sides[side]))
    body = MigrationIn(volume="data", to_host="vm", to_volume="data2")
    checks: list[dict[str, Any]]
    checks, _ = svc._validate(body, "vm", "data2", "local")
    assert [c["name"] for c in checks].count("target local") == 1, checks
    assert {"source", "destination"} <= {c["name"] for c in checks}
