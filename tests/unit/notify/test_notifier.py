"""Notifications: one message per state change (failed → recovered), nothing resent after
a restart or for a repeated failure, the rate limit holds a change back until its window
has passed (and drops it when the state flapped back), delivery failures never raise, and
the webhook's signature is HMAC-SHA256 over the exact body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.db import Database, JobState, jobs
from common.db.migrate import upgrade
from common.notify import channels, notifier
from common.notify.notifier import Message


class Recorder:
    name = "recorder"

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Message] = []
        self.fail = fail

    def send(self, message: Message) -> None:
        if self.fail:
            raise ConnectionError("refused by https://hooks.example/secret-path-token")
        self.sent.append(message)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 'n.db'}")
    upgrade(d)
    yield d
    d.dispose()


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    r = Recorder()
    monkeypatch.setattr(channels, "from_settings", lambda s: [r])
    return r


def settings(**kw: Any) -> Settings:
    return Settings(notify_min_interval_seconds=kw.pop("interval", 0),
                    notify_urls="https://hooks.example/volkeeper", **kw)


def finish(db: Database, state: JobState, kind: str = "backup", volume: str = "data",
           error: str | None = None) -> str:
    with db.session() as s:
        job = jobs.create_job(s, kind=kind, host="h1", volume=volume, target="local")
        job_id = job.id
    with db.session() as s:
        jobs.finish_job(s, job_id, state, error=error)
    return job_id


def test_a_failure_is_told_once_and_the_recovery_once(db: Database, rec: Recorder) -> None:
    s = settings()
    assert notifier.job_finished(db, s, finish(db, JobState.succeeded)) == []  # first, good
    notifier.job_finished(db, s, finish(db, JobState.failed, error="target unreachable"))
    notifier.job_finished(db, s, finish(db, JobState.failed, error="target unreachable"))
    notifier.job_finished(db, s, finish(db, JobState.succeeded))
    notifier.job_finished(db, s, finish(db, JobState.succeeded))
    assert [(m.event, m.kind, m.subject) for m in rec.sent] == [
        ("failed", "backup", "h1/data"), ("recovered", "backup", "h1/data")]
    assert "target unreachable" in rec.sent[0].summary
    assert rec.sent[0].details["job_kind"] == "backup"


def test_kinds_and_volumes_are_watched_apart_and_dry_runs_or_cancels_not_at_all(
        db: Database, rec: Recorder) -> None:
    s = settings()
    notifier.job_finished(db, s, finish(db, JobState.failed, kind="verify", error="damaged"))
    notifier.job_finished(db, s, finish(db, JobState.failed, kind="drill", error="differs"))
    notifier.job_finished(db, s, finish(db, JobState.failed, volume="other", error="x"))
    notifier.job_finished(db, s, finish(db, JobState.failed, kind="validate", error="x"))
    notifier.job_finished(db, s, finish(db, JobState.cancelled, volume="third"))
    assert [(m.kind, m.subject) for m in rec.sent] == [
        ("verify", "h1/data"), ("drill", "h1/data"), ("backup", "h1/other")]
    assert rec.sent[0].summary.startswith("verification of h1/data failed")


def test_a_restart_does_not_resend(db: Database, rec: Recorder) -> None:
    notifier.job_finished(db, settings(), finish(db, JobState.failed, error="x"))
    assert len(rec.sent) == 1
    # a new process: nothing in memory, the told state is in the database
    assert notifier.flush_pending(db, settings()) == []
    notifier.job_finished(db, settings(), finish(db, JobState.failed, error="x"))
    assert len(rec.sent) == 1


def test_the_rate_limit_holds_a_change_back_and_drops_a_flap(
        db: Database, rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(interval=3600)
    notifier.job_finished(db, s, finish(db, JobState.failed, error="x"))
    notifier.job_finished(db, s, finish(db, JobState.succeeded))  # within the hour: held
    assert [m.event for m in rec.sent] == ["failed"]
    assert notifier.flush_pending(db, s) == []
    # the window has passed: the pending recovery goes out once
    assert [m.event for m in notifier.flush_pending(db, settings(interval=0))] == ["recovered"]
    assert notifier.flush_pending(db, settings(interval=0)) == []
    # a flap within the window back to the told state sends nothing at all
    notifier.job_finished(db, s, finish(db, JobState.failed, error="y"))
    notifier.job_finished(db, s, finish(db, JobState.succeeded))
    assert notifier.flush_pending(db, settings(interval=0)) == []
    assert [m.event for m in rec.sent] == ["failed", "recovered"]


def test_overdue_comes_from_the_caller_and_is_told_once_each_way(
        db: Database, rec: Recorder) -> None:
    s = settings()
    notifier.report_freshness(db, s, host="h1", volume="data", overdue=False)
    notifier.report_freshness(db, s, host="h1", volume="data", overdue=True,
                              rpo_seconds=3600)
    notifier.report_freshness(db, s, host="h1", volume="data", overdue=True)
    notifier.report_freshness(db, s, host="h1", volume="data", overdue=False)
    assert [(m.event, m.kind) for m in rec.sent] == [("overdue", "rpo"),
                                                      ("recovered", "rpo")]
    assert "overdue" in rec.sent[0].summary


def test_a_channel_that_fails_is_logged_and_nothing_raises(
        db: Database, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(channels, "from_settings", lambda s: [Recorder(fail=True)])
    sent = notifier.job_finished(db, settings(), finish(db, JobState.failed, error="x"))
    assert len(sent) == 1  # attempted
    assert "could not deliver" in caplog.text
    assert "secret-path-token" not in caplog.text  # the URL's path is not logged


def test_the_webhook_signature_is_hmac_sha256_over_the_body() -> None:
    body = b'{"event": "failed"}'
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert channels.sign("k3y", body) == "sha256=" + expected


def test_channels_follow_the_settings() -> None:
    none = channels.from_settings(Settings())
    assert none == []
    chans = channels.from_settings(Settings(
        notify_urls="https://hooks.example/a, http://127.0.0.1:9/b",
        notify_smtp_host="mail.example", notify_smtp_to="ops@example.com"))
    assert [type(c).__name__ for c in chans] == ["Webhook", "Webhook", "Smtp"]
    assert "a" not in chans[0].name.split("/")[-1]  # path redacted in the name


def test_without_a_channel_nothing_is_observed(db: Database, rec: Recorder) -> None:
    off = Settings(notify_min_interval_seconds=0)
    notifier.job_finished(db, off, finish(db, JobState.failed, error="x"))
    notifier.report_freshness(db, off, host="h1", volume="data", overdue=True)
    # turned on later: old failures are not sent in a burst; a fresh failure is
    notifier.job_finished(db, settings(), finish(db, JobState.succeeded))
    assert rec.sent == []
    notifier.job_finished(db, settings(), finish(db, JobState.failed, error="y"))
    assert [m.event for m in rec.sent] == ["failed"]


def test_the_overdue_summary_names_the_rpo_and_a_volume_never_backed_up(
        db: Database, rec: Recorder) -> None:
    """It read "its newest good backup is from never" for a volume never backed up, and
    named no RPO."""
    s = settings()
    notifier.report_freshness(db, s, host="h1", volume="new", overdue=True, rpo_seconds=40)
    notifier.report_freshness(
        db, s, host="h1", volume="old", overdue=True, rpo_seconds=93600,
        newest_good_at=datetime(2026, 12, 7, 19, 19, 30, tzinfo=UTC))
    assert [m.summary for m in rec.sent] == [
        "volume h1/new is overdue: it has no good backup yet, and its policy is older than "
        "its RPO of 40s",
        "volume h1/old is overdue: its newest good backup (2026-12-07 19:19 UTC) is older "
        "than its RPO of 26h"]


def _stop_mode_backup(db: Database, *, restarted: bool, removed: bool = False) -> str:
    with db.session() as s:
        job_id = jobs.create_job(s, kind="backup", host="h1", volume="pg", target="local").id
    window = {"id": "c1", "name": "shop-db", "seconds_down": 1.2 if restarted else None,
              "restarted": restarted}
    if not restarted and not removed:
        window["start_error"] = "driver failed programming external connectivity"
    if removed:
        window["removed"] = True
    with db.session() as s:
        jobs.finish_job(s, job_id, JobState.succeeded, result={"stop_windows": [window]})
    return job_id


def test_a_container_left_down_after_a_good_backup_is_told_and_so_is_its_recovery(
        db: Database, rec: Recorder) -> None:
    """The backup succeeded (its data is good), but Docker could not start the database
    again: an outage nobody would hear of, as notifications only watched job states."""
    s = settings()
    notifier.job_finished(db, s, _stop_mode_backup(db, restarted=True))
    assert rec.sent == []
    notifier.job_finished(db, s, _stop_mode_backup(db, restarted=False))
    notifier.job_finished(db, s, _stop_mode_backup(db, restarted=False))  # told once
    notifier.job_finished(db, s, _stop_mode_backup(db, restarted=False, removed=True))
    assert [(m.event, m.kind, m.subject) for m in rec.sent] == [
        ("failed", "containers", "h1/pg"), ("recovered", "containers", "h1/pg")]
    assert "shop-db" in rec.sent[0].summary and "docker start shop-db" in rec.sent[0].summary
    assert "external connectivity" in rec.sent[0].summary
    # the backup's own state never went bad: no "backup failed" message
    assert all(m.kind != "backup" for m in rec.sent)
