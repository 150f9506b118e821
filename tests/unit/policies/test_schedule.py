"""Schedules: cron in a time zone across clock changes, presets, intervals, jitter and the
one make-up run after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.policies.schedule import (
    PRESET_INTERVALS,
    PRESETS,
    format_duration,
    jitter_for,
    measured_interval,
    parse_duration,
    parse_schedule,
    parse_tz,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def runs(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    return list(parse_schedule(expr, tz).slots(start, end))


def test_berlin_spring_forward_runs_the_skipped_0230_once_at_the_change() -> None:
    got = runs("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27, 12), utc(2026, 3, 31, 12))
    assert got == [utc(2026, 3, 28, 1, 30),   # 02:30 CET
                   utc(2026, 3, 29, 1, 0),    # 02:30 does not exist: 03:00 CEST, the change
                   utc(2026, 3, 30, 0, 30),   # 02:30 CEST
                   utc(2026, 3, 31, 0, 30)]


def test_berlin_fall_back_runs_the_doubled_0230_once() -> None:
    got = runs("30 2 * * *", "Europe/Berlin", utc(2026, 10, 23, 12), utc(2026, 10, 27, 12))
    assert got == [utc(2026, 10, 24, 0, 30),  # 02:30 CEST
                   utc(2026, 10, 25, 0, 30),  # first 02:30 (CEST); not again at 02:30 CET
                   utc(2026, 10, 26, 1, 30),  # 02:30 CET
                   utc(2026, 10, 27, 1, 30)]


def test_every_half_hour_across_spring_forward_never_doubles_or_goes_back() -> None:
    got = runs("*/30 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0), utc(2026, 3, 29, 2))
    # 01:30 CET; 02:00 and 02:30 do not exist: one run at the change (03:00 CEST); 03:30 …
    assert got == [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30),
                   utc(2026, 3, 29, 2)]


def test_next_after_from_inside_the_doubled_hour_does_not_repeat_the_first_run() -> None:
    s = parse_schedule("30 2 * * *", "Europe/Berlin")
    # 01:10 UTC is 02:10 CET, in the second 02:xx hour: the day's run was at 00:30 UTC
    assert s.next_after(utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)
    assert s.last_at_or_before(utc(2026, 10, 25, 1, 40)) == utc(2026, 10, 25, 0, 30)


def test_presets_and_cron_in_utc() -> None:
    assert parse_schedule("@daily").next_after(utc(2026, 1, 1, 5)) == utc(2026, 1, 2)
    assert parse_schedule("@hourly").next_after(utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 6)
    assert parse_schedule("@weekly").next_after(utc(2026, 1, 1)) == utc(2026, 1, 4)  # Sunday
    assert parse_schedule("@monthly").next_after(utc(2026, 1, 15)) == utc(2026, 2, 1)
    assert parse_schedule("0 2 * * *", "Europe/Berlin").next_after(
        utc(2026, 1, 1)) == utc(2026, 1, 1, 1)


def test_every_interval_is_anchored_at_the_epoch() -> None:
    s = parse_schedule("@every 6h")
    assert s.next_after(utc(2026, 1, 1, 5, 59)) == utc(2026, 1, 1, 6)
    assert s.next_after(utc(2026, 1, 1, 6)) == utc(2026, 1, 1, 12)
    assert parse_schedule("@every 30s").next_after(utc(2026, 1, 1, 0, 0, 31)) == utc(
        2026, 1, 1, 0, 1)
    assert s.interval() == timedelta(hours=6)


def test_interval_of_a_cron_is_its_longest_wall_clock_gap() -> None:
    assert parse_schedule("0 2 * * *", "Europe/Berlin").interval() == timedelta(days=1)
    assert parse_schedule("0 2 * * 1-5").interval() == timedelta(days=3)
    assert parse_schedule("@hourly").interval() == timedelta(hours=1)


def test_due_runs_makes_up_a_missed_run_once_after_downtime() -> None:
    s = parse_schedule("@hourly")
    last = utc(2026, 1, 1, 0)
    assert s.due_runs(last, utc(2026, 1, 1, 0, 59)) == []
    assert s.due_runs(last, utc(2026, 1, 1, 1)) == [utc(2026, 1, 1, 1)]
    # down for 10 hours: one make-up (the newest slot), not ten
    assert s.due_runs(last, utc(2026, 1, 1, 10, 30)) == [utc(2026, 1, 1, 10)]
    assert s.due_runs(utc(2026, 1, 1, 10), utc(2026, 1, 1, 10, 30)) == []
    assert s.due_runs(None, utc(2026, 1, 1, 10, 30)) == []


def test_jitter_is_bounded_and_the_same_for_a_policy_and_slot() -> None:
    slot = utc(2026, 1, 1, 2)
    a = jitter_for("nightly", slot, 600)
    assert a == jitter_for("nightly", slot, 600)
    assert timedelta(0) <= a < timedelta(seconds=600)
    spread = {jitter_for(f"p{i}", slot, 600) for i in range(50)}
    assert len(spread) > 30
    assert jitter_for("nightly", slot, 0) == timedelta(0)


@pytest.mark.parametrize("expr", ["61 * * * *", "* * *", "0 2 * * * *", "@sometimes",
                                  "@every", "@every 0s", "@every 5x", ""])
def test_invalid_schedules_say_what_is_accepted(expr: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_schedule(expr)


def test_unknown_time_zone_is_refused() -> None:
    for name in ("Mars/Olympus", "", "../etc/passwd", "Europe/Berlin "):
        with pytest.raises(ValueError, match="unknown time zone"):
            parse_tz(name)
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_schedule("@daily", "Nowhere/Land")


def test_durations() -> None:
    assert parse_duration("26h") == timedelta(hours=26)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(days=14)
    assert format_duration(timedelta(hours=26)) == "26h"
    assert format_duration(timedelta(days=2)) == "2d"
    for bad in ("", "h", "5", "-5h", "5 hours", "0s"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)


def test_the_presets_intervals_are_what_croniter_measures() -> None:
    for cron, interval in PRESET_INTERVALS.items():
        assert measured_interval(cron) == interval, cron
    assert set(PRESET_INTERVALS) == set(PRESETS.values())
    assert parse_schedule("@daily").interval() == timedelta(days=1)
    with pytest.raises(ValueError, match="invalid schedule"):
        parse_schedule("@dayly")
