"""Retention decisions: restic's --keep-* rules, plus volkeeper's guarantees (pinned and
the newest good backup kept, safety snapshots not counted), and refusals naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from common.policies.retention import Item, RetentionError, check_retention, decide

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)


def daily(n: int, **extra: object) -> list[Item]:
    """One backup a day for n days, newest first: d0 (today) … d{n-1}."""
    return [Item(id=f"d{k}", created_at=T0 - timedelta(days=k), **extra)  # type: ignore[arg-type]
            for k in range(n)]


def kept(items: list[Item], rules: dict[str, object], tz: str = "UTC") -> list[str]:
    return [d.id for d in decide(items, rules, ZoneInfo(tz)) if d.keep]


def test_keep_last_keeps_the_n_newest() -> None:
    assert kept(daily(10), {"keep_last": 3}) == ["d0", "d1", "d2"]


def test_keep_daily_keeps_the_newest_of_each_day() -> None:
    items = [Item("a", T0), Item("b", T0 - timedelta(hours=1)),
             Item("c", T0 - timedelta(days=1)), Item("d", T0 - timedelta(days=1, hours=2)),
             Item("e", T0 - timedelta(days=2))]
    assert kept(items, {"keep_daily": 2}) == ["a", "c"]


def test_weekly_and_monthly_follow_iso_weeks_and_months() -> None:
    items = daily(70)
    got = kept(items, {"keep_weekly": 4})
    # T0 is Sunday 2026-12-06: newest of each ISO week is its Sunday
    assert got == ["d0", "d7", "d14", "d21"]
    months = kept(items, {"keep_monthly": 3})
    assert months == ["d0", "d6", "d36"]  # Dec 6, Nov 30, Oct 31


def test_fewer_periods_than_asked_keeps_the_oldest_as_restic_does() -> None:
    got = decide(daily(3), {"keep_daily": 7})
    assert [d.keep for d in got] == [True, True, True]
    assert any("oldest" in r for r in got[-1].reasons)
    assert kept(daily(5), {"keep_monthly": 12}) == ["d0", "d4"]


def test_keep_within_is_relative_to_the_newest_backup_not_to_now() -> None:
    old = [Item(f"o{k}", T0 - timedelta(days=100 + k)) for k in range(5)]
    assert kept(old, {"keep_within": "2d"}) == ["o0", "o1"]


def test_keep_tag_keeps_backups_with_all_tags_of_an_entry() -> None:
    items = daily(5)
    items[3] = Item("d3", items[3].created_at, tags=("release",))
    items[4] = Item("d4", items[4].created_at, tags=("a",))
    assert kept(items, {"keep_last": 1, "keep_tag": ["release", "a,b"]}) == ["d0", "d3"]


def test_pinned_is_never_forgotten_and_says_why() -> None:
    items = daily(5)
    items[4] = Item("d4", items[4].created_at, pinned=True)
    got = {d.id: d for d in decide(items, {"keep_last": 1})}
    assert got["d4"].keep and got["d4"].reasons == ["pinned"]
    assert not got["d3"].keep and got["d3"].reasons == ["no rule keeps it"]


def test_safety_snapshots_are_not_counted_nor_forgotten() -> None:
    items = [Item("s", T0 + timedelta(hours=1), kind="safety"), *daily(3)]
    got = {d.id: d for d in decide(items, {"keep_last": 2})}
    assert [i for i in ("d0", "d1", "d2") if got[i].keep] == ["d0", "d1"]
    assert got["s"].keep and "safety" in got["s"].reasons[0]


def test_the_newest_good_backup_is_kept_whatever_the_rules() -> None:
    items = daily(4)
    items[0] = Item("d0", items[0].created_at, damaged=True)
    items[1] = Item("d1", items[1].created_at, damaged=True)
    got = {d.id: d for d in decide(items, {"keep_tag": ["never-there"]})}
    assert got["d2"].keep and "newest good" in got["d2"].reasons[0]
    assert not got["d0"].keep and got["d0"].reasons == ["damaged, and no rule keeps it"]
    # a damaged backup fills no keep_last slot
    assert kept(items, {"keep_last": 1}) == ["d2"]


def test_unlimited_count_keeps_every_period() -> None:
    assert len(kept(daily(40), {"keep_daily": -1})) == 40
    assert len(kept(daily(40), {"keep_daily": "unlimited"})) == 40


def test_days_are_counted_in_the_policys_time_zone() -> None:
    # 23:30 UTC and 00:30 UTC next day: different UTC days, the same day in New York
    items = [Item("late", datetime(2026, 12, 6, 0, 30, tzinfo=UTC)),
             Item("early", datetime(2026, 12, 5, 23, 30, tzinfo=UTC)),
             Item("old", datetime(2026, 12, 1, 12, tzinfo=UTC))]
    assert kept(items, {"keep_daily": 2}) == ["late", "early"]
    assert kept(items, {"keep_daily": 2}, "America/New_York") == ["late", "old"]


@pytest.mark.parametrize(("rules", "field"), [
    ({}, "retention"),
    ({"keep_last": 0, "keep_daily": 0}, "keep_last"),
    ({"keep_daily": -2}, "keep_daily"),
    ({"keep_weekly": "four"}, "keep_weekly"),
    ({"keep_within": "soon"}, "keep_within"),
    ({"keep_tag": [""]}, "keep_tag"),
    ({"keep_forever": 1}, "keep_forever"),
])
def test_retention_that_keeps_nothing_or_is_malformed_names_the_field(
        rules: dict[str, object], field: str) -> None:
    with pytest.raises(RetentionError) as e:
        check_retention(rules)
    assert e.value.field == field and str(e.value).startswith(field)


def test_ten_thousand_backups_are_decided_with_a_bounded_set_kept() -> None:
    """(Its speed is measured by benchmarks/retention_bench.py, not asserted here.)"""
    items = [Item(f"b{k}", T0 - timedelta(minutes=37 * k), tags=("x",) if k % 97 else ())
             for k in range(10_000)]
    rules = {"keep_last": 10, "keep_hourly": 48, "keep_daily": 14, "keep_weekly": 8,
             "keep_monthly": 12, "keep_yearly": 3, "keep_within": "2d", "keep_tag": ["y"]}
    got = decide(items, rules, ZoneInfo("Europe/Berlin"))
    assert len(got) == 10_000 and 0 < sum(d.keep for d in got) < 200
