"""The inventory written in place (full rows: only what changed is written) ends as a
replacement from scratch would leave it: new volumes added, changed ones updated, gone ones
removed, every row seen at the inventory's time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common.db import Database, hosts
from common.db.migrate import upgrade
from common.db.models import Host


def _row(name: str, size: int | None = 1, **over: Any) -> dict[str, Any]:
    return {"name": name, "driver": "local", "mountpoint": f"/v/{name}", "size_bytes": size,
            "labels": {"app": name}, "containers": {"items": []},
            "created_at": "2026-12-07T00:00:00Z"} | over


def _db(path: Path, first: list[dict[str, Any]]) -> Database:
    db = Database(f"sqlite:///{path}")
    upgrade(db, quiet=True)
    with db.session() as s:
        hosts.register_host(s, "h1", docker_version="28", worker_version="t")
        hosts.replace_inventory(s, "h1", first)
    return db


def _stored(db: Database) -> tuple[dict[str, dict[str, Any]], set[Any], Any]:
    with db.session() as s:
        rows = hosts.list_volumes(s, "h1")
        h = s.get(Host, "h1")
        assert h is not None
        return ({r.name: {c: getattr(r, c) for c in _row("x")} for r in rows},
                {r.seen_at for r in rows}, h.inventory_at)


def test_an_inventory_updated_in_place_equals_one_written_from_scratch(
        tmp_path: Path) -> None:
    before = [_row("a"), _row("b"), _row("c")]
    now = [_row("a"), _row("b", size=7, labels={"app": "b", "tier": "db"}),
           _row("d", size=None)]  # c is gone, d is new
    updated = _db(tmp_path / "updated.db", before)
    fresh = _db(tmp_path / "fresh.db", [])
    time.sleep(0.01)  # a later "now"
    with updated.session() as s:
        hosts.replace_inventory(s, "h1", now)
    with fresh.session() as s:
        hosts.replace_inventory(s, "h1", now)
    rows, seen, at = _stored(updated)
    assert rows == _stored(fresh)[0] == {r["name"]: r for r in now}
    assert seen == {at}


def test_partial_rows_replace_the_inventory_with_defaults(tmp_path: Path) -> None:
    db = _db(tmp_path / "v.db", [_row("a"), _row("b")])
    with db.session() as s:
        hosts.replace_inventory(s, "h1", [{"name": "b", "driver": "local"}])
    rows, seen, at = _stored(db)
    assert rows == {"b": {"name": "b", "driver": "local", "mountpoint": None,
                          "size_bytes": None, "labels": {}, "containers": {},
                          "created_at": None}}
    assert seen == {at}
