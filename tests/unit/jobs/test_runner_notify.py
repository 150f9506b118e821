"""A finished job is handed to the notifier only when a notification channel is
configured: without one nothing is observed, and the notifier (its mail and webhook code)
is not even loaded at the end of a one-shot command's job."""

from __future__ import annotations

import pytest

import common.notify
from common.jobs import runner
from common.jobs.context import JobContext
from tests.unit.jobs.test_fencing import _job, ctx

__all__ = ["ctx"]


@pytest.mark.parametrize("urls", ["", "https://hooks.example/volkeeper"])
def test_the_runner_tells_the_notifier_only_with_a_channel(
        ctx: JobContext, monkeypatch: pytest.MonkeyPatch, urls: str) -> None:
    told: list[str] = []
    monkeypatch.setattr(common.notify, "job_finished",
                        lambda db, settings, job_id: told.append(job_id) or [])
    ctx.settings = ctx.settings.model_copy(update={"notify_urls": urls})
    assert ctx.settings.notifications_on is bool(urls)
    job_id = _job(ctx)
    runner.run_job(ctx, job_id, lambda c, j, t: runner.Outcome({"ok": True}))
    assert told == ([job_id] if urls else [])
