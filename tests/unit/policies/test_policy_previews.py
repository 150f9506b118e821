"""The console's previews of a policy being written: the next runs of a schedule in its
time zone (422 naming schedule, tz or count) and what a draft's retention would keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from common.jobs.policy_previews import schedule_preview
from tests.unit.api.test_api import Env, error
from tests.unit.policies.test_policy_api import NIGHTLY, _backup, env  # noqa: F401

URL = "/api/v1/policies/preview-schedule"


def test_the_next_runs_are_the_schedules_slots_in_its_time_zone(env: Env) -> None:  # noqa: F811
    r = env.client.get(URL, params={"schedule": "30 2 * * *", "tz": "Europe/Berlin",
                                     "count": 3})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["interval"] == "1d" and out["default_rpo"] == "2d"
    runs = [datetime.fromisoformat(t) for t in out["runs"]]
    assert len(runs) == 3 and runs == sorted(runs)
    assert all(t.strftime("%H:%M") in ("02:30", "03:00") for t in runs)
    assert all(b - a == timedelta(days=1) for a, b in pairwise(runs)
               if a.utcoffset() == b.utcoffset())


def test_a_clock_change_neither_skips_nor_doubles_a_run() -> None:
    before = datetime(2026, 3, 28, 12, tzinfo=UTC)  # Berlin springs forward on the 29th
    runs = schedule_preview("30 2 * * *", "Europe/Berlin", 3, now=before).runs
    assert [t.strftime("%d %H:%M %z") for t in runs] == [
        "29 03:00 +0200", "30 02:30 +0200", "31 02:30 +0200"]


def test_bad_schedule_tz_or_count_is_422_naming_each(env: Env) -> None:  # noqa: F811
    r = env.client.get(URL, params={"schedule": "61 2 * * *", "tz": "Mars/Olympus",
                                    "count": 0})
    assert r.status_code == 422, r.text
    body = error(r)
    for field in ("schedule", "tz", "count"):
        assert field in body["message"]
    assert "invalid schedule" in body["hint"] and "unknown time zone" in body["hint"]
    r = env.client.get(URL, params={"schedule": "@every 6h"})
    assert r.status_code == 200 and r.json()["interval"] == "6h"


def test_a_drafts_retention_is_previewed_without_saving_it(env: Env) -> None:  # noqa: F811
    ids = [_backup(env, "pg", timedelta(days=d)) for d in range(4)]
    draft = {k: v for k, v in NIGHTLY.items() if k != "name"} | {
        "targets": ["local"], "retention": {"keep_last": 1}}
    r = env.client.post("/api/v1/policies/preview-retention", json=draft)
    assert r.status_code == 200, r.text
    groups = {g["volume"]: g for g in r.json()}
    assert (groups["pg"]["keep"], groups["pg"]["forget"]) == (1, 3)
    assert [b["id"] for b in groups["pg"]["backups"] if b["keep"]] == [ids[0]]
    assert env.client.get("/api/v1/policies").json() == []
    r = env.client.post("/api/v1/policies/preview-retention",
                        json=draft | {"targets": ["nas"]})
    assert r.status_code == 422 and "targets" in error(r)["message"]


def test_a_policy_cannot_take_a_name_the_preview_routes_use(env: Env) -> None:  # noqa: F811
    r = env.client.post("/api/v1/policies", json=NIGHTLY | {"name": "preview-schedule"})
    assert r.status_code == 422, r.text
    assert "preview-" in error(r)["message"] + error(r).get("hint", "")
    assert env.client.get("/api/v1/policies/preview-schedule",
                          params={"schedule": "@daily"}).status_code == 200


def test_a_cron_naming_no_date_or_a_huge_jitter_is_422_not_500(env: Env) -> None:  # noqa: F811
    # croniter accepts 31 February and then finds no slot (CroniterBadDateError: a 500);
    # a jitter past a timedelta was an OverflowError
    for params, field, words in (
            ({"schedule": "0 0 31 2 *"}, "schedule", "never run"),
            ({"schedule": "0 0 30 2 *", "tz": "Europe/Berlin"}, "schedule", "31 February"),
            ({"schedule": "@daily", "jitter_seconds": 10**20}, "jitter_seconds", "0 to 86400"),
            ({"schedule": "@daily", "jitter_seconds": -1}, "jitter_seconds", "0 to 86400"),
            # a name longer than a file name: OSError from zoneinfo, a 500
            ({"schedule": "@daily", "tz": "a" * 3000}, "tz", "unknown time zone")):
        r = env.client.get(URL, params=params)
        assert r.status_code == 422, (params, r.text)
        assert field in error(r)["message"] and words in error(r)["hint"], r.text
    leap = env.client.get(URL, params={"schedule": "0 0 29 2 *", "count": 2})
    assert leap.status_code == 200, leap.text  # every leap year: a date that exists
    assert [t[5:10] for t in leap.json()["runs"]] == ["02-29", "02-29"]
