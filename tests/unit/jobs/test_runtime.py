"""The in-process side of ``common.jobs``: the task registry, the in-process dispatcher,
the embedded runtime and the schema check, against SQLite (no Docker, no broker)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.config import Settings
from common.db import JobState, catalog, hosts, jobs
from common.db.migrate import at_head, head_revision, stored_revision, upgrade
from common.db.session import Database
from common.errors import Unavailable
from common.jobs import context, names
from common.jobs.embedded import EmbeddedRuntime
from common.jobs.tasks import TASKS

REPO = Path(__file__).resolve().parents[3]
NO_DOCKER = "unix:///nonexistent/docker.sock"


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, host_name="h1", docker_host=NO_DOCKER)


def test_every_task_name_has_exactly_one_function() -> None:
    declared = {v for k, v in vars(names).items() if k.startswith("TASK_")}
    assert set(TASKS) == declared


def test_the_embedded_path_imports_no_framework_broker_or_cloud_sdk() -> None:
    code = ("import sys; from common.jobs.embedded import EmbeddedRuntime; "
            "print(sorted(m for m in ('celery', 'fastapi', 'uvicorn', 'alembic', 'boto3') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


_NEVER = ("celery", "fastapi", "uvicorn", "alembic", "boto3", "httpx")
_ELSEWHERE = ("common.repository.check", "common.repository.maintenance",
              "common.engine.drill", "common.engine.migrate", "common.engine.repo_verify",
              "common.engine.sync", "common.jobs.migration_steps")


@pytest.mark.parametrize(("task", "engine", "not_loaded"), [
    (names.TASK_BACKUP, "common.engine.backup",
     ("common.repository.restore", "common.engine.restore", *_ELSEWHERE)),
    (names.TASK_RESTORE, "common.engine.restore", _ELSEWHERE),
])
def test_a_one_shot_job_loads_its_own_part_of_the_engine(
        task: str, engine: str, not_loaded: tuple[str, ...]) -> None:
    """A one-shot ``volkeeper backup`` or ``restore`` (embedded) loads its part of the
    engine: not drills, migrations, checks or repository maintenance (a backup: nor the
    restore side), nor a framework, broker or cloud SDK."""
    code = (f"import sys, importlib; import cli.local; from common.jobs.tasks import body_of; "
            f"body_of({task!r}); importlib.import_module({engine!r}); "
            f"print(sorted(m for m in sys.modules if m in {_NEVER!r} "
            f"or m.startswith({not_loaded!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_upgrade_recognises_a_schema_at_head_without_alembic(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'v.db'}")
    assert stored_revision(db) is None and not at_head(db)
    upgrade(db, quiet=True)
    assert stored_revision(db) == head_revision() is not None
    assert at_head(db)
    upgrade(db)  # a no-op now
    db.dispose()


def test_a_one_shot_runtime_without_docker_registers_the_host_and_warns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with EmbeddedRuntime(_settings(tmp_path), background=False) as rt:
        assert context.current() is rt.ctx
        with rt.db.session() as s:
            assert hosts.get_host(s, "h1").docker_version is None
            assert catalog.get_target(s, "local").url.startswith("file://")
    assert "cannot reach the Docker engine" in caplog.text


def test_a_one_shot_runtime_fails_jobs_nobody_picked_up(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(update={"queued_job_timeout_seconds": 0})
    with EmbeddedRuntime(settings, background=False) as rt, rt.db.session() as s:
        job = jobs.create_job(s, kind="backup", host="h1", volume="v", target="local")
    with EmbeddedRuntime(settings, background=False) as rt, rt.db.session() as s:
        lost = jobs.get_job(s, job.id)
        assert lost.state == JobState.failed and "picked this job up" in (lost.error or "")


def test_the_in_process_dispatcher_fails_a_job_whose_task_crashes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(job_id: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(TASKS, names.TASK_BACKUP, crash)
    with EmbeddedRuntime(_settings(tmp_path), background=False) as rt:
        with rt.db.session() as s:
            job = jobs.create_job(s, kind="backup", host="h1", volume="v", target="local")
        rt.dispatcher.send(names.TASK_BACKUP, "h1", {"job_id": job.id})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with rt.db.session() as s:
                row = jobs.get_job(s, job.id)
            if row.state.finished:
                break
            time.sleep(0.05)
    assert row.state == JobState.failed
    assert "internal error (RuntimeError: boom)" in (row.error or "")


def test_the_in_process_dispatcher_runs_tasks_with_its_own_context_and_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[object, str | None]] = []

    def keys(job_id: str, new_password: str | None = None) -> None:
        seen.append((context.current(), new_password))

    monkeypatch.setitem(TASKS, names.TASK_KEYS, keys)
    with EmbeddedRuntime(_settings(tmp_path), background=False) as rt:
        context.install(context.JobContext(_settings(tmp_path)))  # someone else's
        rt.dispatcher.send(names.TASK_KEYS, "h1", {"job_id": "j"},
                           secrets={"new_password": "s3cret"})
    assert seen == [(rt.ctx, "s3cret")]


def test_the_in_process_dispatcher_refuses_other_hosts(tmp_path: Path) -> None:
    with EmbeddedRuntime(_settings(tmp_path), background=False) as rt, \
            pytest.raises(Unavailable, match="one host"):
        rt.dispatcher.send(names.TASK_BACKUP, "elsewhere", {"job_id": "j"})
