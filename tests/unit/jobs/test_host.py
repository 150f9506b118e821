"""The host's housekeeping, against SQLite and a local target (no Docker needed)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from common.config import Settings
from common.db import catalog
from common.db.migrate import upgrade
from common.db.models import utcnow
from common.jobs.context import JobContext
from common.jobs.host import prune_safety_snapshots
from common.storage.local import LocalBackend


def _ctx(tmp_path: Path) -> JobContext:
    ctx = JobContext(Settings(home=tmp_path, host_name="h1"))
    upgrade(ctx.db)
    with ctx.db.session() as s:
        catalog.ensure_target(s, "local", (tmp_path / "store").as_uri())
    return ctx


def _safety(ctx: JobContext, store: LocalBackend, name: str, expires_in: timedelta,
            host: str = "h1") -> str:
    key = f"volkeeper/safety/{host}/vol/{name}.tar.zst"
    store.put_bytes(key, b"archive")
    store.put_bytes(key + ".manifest.jsonl", b"manifest")
    with ctx.db.session() as s:
        return catalog.add_backup(
            s, host=host, volume="vol", target="local", format="tar.zst", key=key,
            manifest_key=key + ".manifest.jsonl", checksum="0" * 64, kind="safety",
            expires_at=utcnow() + expires_in).id


def test_expired_safety_snapshots_of_this_host_are_deleted_and_others_kept(
        tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    store = LocalBackend(tmp_path / "store")
    old = _safety(ctx, store, "old", timedelta(hours=-1))
    fresh = _safety(ctx, store, "fresh", timedelta(hours=5))
    other_host = _safety(ctx, store, "other", timedelta(hours=-1), host="h2")
    assert prune_safety_snapshots(ctx) == [old]
    keys = {o.key for o in store.list("volkeeper/")}
    assert not any("/old." in k for k in keys)
    assert any("/fresh." in k for k in keys) and any("/other." in k for k in keys)
    with ctx.db.session() as s:
        ids = {b.id for b in catalog.list_backups(s, kind="safety")}
    assert ids == {fresh, other_host}
