"""The catalog's list views (``common.jobs.reads``) read the same through a SQLAlchemy
session and through the standard library's SQLite driver, and what they print is what the
API's output models print; the short start of the embedded read commands
(``embedded_reads``) is taken only when it would do all the full start does."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.db import Backup, Host, Job, JobState, Policy, Target, Volume
from common.db.migrate import upgrade
from common.db.rows import SessionRows, SqliteRows
from common.db.session import Database
from common.errors import NotFound
from common.jobs import embedded_reads, reads, views
from common.jobs.host_rows import VERSION

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 12, 6, 14, 50, 0, 123456, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'volkeeper.db'}")
    upgrade(database, quiet=True)
    yield database
    database.dispose()


def fill(db: Database) -> None:
    """A host with three volumes (labels holding a secret, a container), backups of every
    kind and state, jobs, and a policy claiming one volume."""
    containers = {"items": [{"id": "c1", "name": "db", "state": "running",
                             "labels": {"x": "1"}}]}
    with db.session() as s:
        s.add(Target(name="local", url="file:///x", options={}, secrets={}))
        s.add(Host(name="h1", docker_version="27.1", worker_version=VERSION,
                   info={"docker_host": None}, last_seen_at=T0, inventory_at=T0))
        for name, labels in (("app", {"db-password": "s3cret", "tier": "gold"}),
                             ("cache", {}), ("logs", {"volkeeper.stop": "true"})):
            s.add(Volume(host="h1", name=name, driver="local", mountpoint=f"/v/{name}",
                         size_bytes=None if name == "cache" else 4096, labels=labels,
                         containers=containers if name == "app" else {},
                         created_at="2026-01-01T00:00:00Z", seen_at=T0))
        for i in range(6):
            s.add(Backup(id=f"b{i}", job_id=f"j{i}", host="h1",
                         volume="app" if i % 2 else "logs", target="local",
                         format="repo" if i % 3 else "tar.zst", key=f"k{i}",
                         manifest_key="" if i % 3 else f"m{i}", stored_bytes=10 * i,
                         logical_bytes=100 * i, file_count=i, checksum="",
                         snapshot_id=f"s{i}" if i % 3 else "",
                         created_at=T0 + timedelta(minutes=i),
                         verified_at=T0 if i == 1 else None,
                         verify_status="damaged" if i == 5 else "ok" if i == 1 else None,
                         kind="safety" if i == 4 else "backup",
                         expires_at=T0 + timedelta(days=3) if i == 4 else None,
                         tags=["nightly"] if i < 3 else [], pinned=i == 2,
                         group_id="g1" if i == 3 else None))
        for i, state in enumerate(JobState):
            s.add(Job(id=f"j{i}", kind="backup", state=state, host="h1", volume="app",
                      target="local", params={"format": "repo"}, progress={"bytes_done": i},
                      result={"n": i}, error="boom" if state == JobState.failed else None,
                      requested_by="cli:local-user", created_at=T0 + timedelta(seconds=i),
                      started_at=T0, finished_at=T0 if state.finished else None))
        s.add(Policy(name="gold", selection={"selector": "tier=gold"}, schedule="@daily",
                     tz="UTC", targets=["local"], retention={}, created_at=T0,
                     updated_at=T0))


def test_both_drivers_read_the_same_views_the_api_prints(db: Database,
                                                         tmp_path: Path) -> None:
    fill(db)
    lite = SqliteRows(str(tmp_path / "volkeeper.db"))
    calls: list[tuple[str, dict[str, Any]]] = [
        ("volumes", {}), ("volumes", {"host": "h1"}), ("backups", {}),
        ("backups", {"tag": "nightly"}), ("backups", {"pinned": True}),
        ("backups", {"kind": None}), ("backups", {"volume": "app", "limit": 1, "offset": 1}),
        ("backups", {"group": "g1"}), ("jobs", {}), ("jobs", {"state": "failed"})]
    with db.session() as s:
        for what, kwargs in calls:
            through_session = _read(SessionRows(s), what, kwargs)
            assert _read(lite, what, kwargs) == through_session, (what, kwargs)
            assert reads.jsonable(through_session) == _api(s, what, kwargs), (what, kwargs)
    lite.close()


def _read(rows: Any, what: str, kwargs: dict[str, Any]) -> Any:
    if what == "volumes":
        return reads.list_volumes(rows, **kwargs)
    if what == "jobs":
        return reads.list_jobs(rows, None, **kwargs)
    return reads.list_backups(rows, **kwargs)


def _api(s: Any, what: str, kwargs: dict[str, Any]) -> Any:
    """What the API's output models make of the same rows, as JSON."""
    if what == "volumes":
        return views.dump(views.list_volumes(s, **kwargs))
    if what == "jobs":
        return views.dump(views.list_jobs(s, None, **kwargs))
    kind = kwargs.pop("kind", "backup")
    return views.dump(views.list_backups(s, kind="all" if kind is None else kind, **kwargs))


def test_the_views_keep_their_meaning(db: Database, tmp_path: Path) -> None:
    fill(db)
    lite = SqliteRows(str(tmp_path / "volkeeper.db"))
    assert_meaning(lite)
    lite.close()


def assert_meaning(rows: Any) -> None:
    """The views of ``fill``'s rows (also run on PostgreSQL by the integration lane)."""
    app, cache, _logs = reads.jsonable(reads.list_volumes(rows))
    assert app["labels"] == {"db-password": "<redacted>", "tier": "gold"}
    assert app["containers"] == [{"id": "c1", "name": "db", "state": "running"}]
    assert app["policy"] == "gold" and app["rpo_seconds"] == 2 * 86400
    assert app["last_backup_at"] == "2026-12-06T14:55:00.123456Z"  # b5, damaged
    assert app["last_good_backup_at"] == "2026-12-06T14:53:00.123456Z"  # b3
    assert cache["size_bytes"] is None and cache["policy"] is None and cache["overdue"] is None
    newest = reads.jsonable(reads.list_backups(rows))
    assert [b["id"] for b in newest] == ["b5", "b3", "b2", "b1", "b0"]  # b4: a safety
    b2 = newest[2]
    assert b2["pinned"] is True and b2["tags"] == ["nightly"] and b2["snapshot_id"] == "s2"
    assert newest[-1]["snapshot_id"] is None and newest[-1]["manifest_key"] == "m0"
    assert [b["id"] for b in reads.list_backups(rows, tag="nightly", offset=1)] == ["b1", "b0"]
    assert [b["id"] for b in reads.list_backups(rows, pinned=False, kind=None)][:2] == [
        "b5", "b4"]
    jobs = reads.jsonable(reads.list_jobs(rows, None, limit=2))
    assert [j["state"] for j in jobs] == ["cancelled", "failed"]
    assert jobs[0]["params"] == {"format": "repo"} and jobs[0]["started_at"].endswith("Z")
    with pytest.raises(NotFound, match="host"):
        reads.list_volumes(rows, "nope")


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(home=tmp_path, host_name="h1",
                    docker_host="unix:///nonexistent/docker.sock", **kw)


def test_the_short_start_needs_a_ready_catalog_with_nothing_to_clean_up(
        db: Database, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert embedded_reads.open_reader(_settings(tmp_path / "new")) is None  # no database
    assert embedded_reads.open_reader(settings) is None  # no default target yet
    fill(db)
    assert embedded_reads.open_reader(settings) is None  # a job is queued, one running
    with db.session() as s:
        for job in s.query(Job).filter(Job.state.in_((JobState.queued, JobState.running))):
            job.state = JobState.succeeded
    reader = embedded_reads.open_reader(settings)
    assert reader is not None  # every job finished
    assert [b["id"] for b in reader.backups(tag="nightly")] == ["b2", "b1", "b0"]
    reader.close()
    assert embedded_reads.open_reader(_settings(tmp_path, short_reads=False)) is None
    # the volumes ask Docker first: an engine that does not answer takes the full start
    assert embedded_reads.open_reader(settings, inventory=True) is None
    cases: dict[str, dict[str, Any]] = {  # each alone makes a one-shot command clean up first
        "running": {"state": JobState.running},
        "queued": {"state": JobState.queued},
        "locked": {"state": JobState.failed, "active_lock": "h1/app", "finished_at": T0},
        "left objects": {"state": JobState.failed, "params": {"format": "tar.zst"},
                         "finished_at": datetime.now(UTC)}}
    for name, fields in cases.items():
        with db.session() as s:
            s.add(Job(id="x1", kind="backup", host="h1", volume="app", target="local",
                      **({"params": {}} | fields)))
        assert embedded_reads.open_reader(settings) is None, name
        with db.session() as s:
            s.delete(s.get(Job, "x1"))
    with db.session() as s:  # a repository backup leaves nothing to look for
        s.add(Job(id="x1", kind="backup", host="h1", volume="app", target="local",
                  state=JobState.failed, params={"format": "repo"},
                  finished_at=datetime.now(UTC)))
    assert embedded_reads.open_reader(settings) is not None


def test_the_short_start_loads_no_sqlalchemy_and_no_view_models(db: Database,
                                                              tmp_path: Path) -> None:
    fill(db)
    with db.session() as s:
        for job in s.query(Job).filter(Job.state.in_((JobState.queued, JobState.running))):
            job.state = JobState.succeeded
    code = ("import json, sys; from common.config import Settings; "
            "from common.jobs import embedded_reads, reads; "
            f"r = embedded_reads.open_reader(Settings(home={str(tmp_path)!r}, "
            "host_name='h1')); print(json.dumps([r is not None, "
            "len(reads.jsonable(r.jobs(50))), len(reads.jsonable(r.backups())), "
            "sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy' "
            "or m in ('common.db.models', 'common.jobs.views'))]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == [True, 5, 5, []]
