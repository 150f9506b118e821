"""The CLI's human formatting (ages, sizes) and the input checks both fronts share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cli.render import size, when
from common.jobs.inputs import InvalidRequest, RestoreIn, parse


def _ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).replace(tzinfo=None).isoformat()


def test_recent_times_read_as_ages_and_older_ones_as_local_minutes() -> None:
    assert when(_ago(seconds=5)) in ("5s ago", "6s ago")
    assert when(_ago(minutes=3, seconds=5)) == "3m ago"
    assert when(_ago(hours=5, minutes=1)) == "5h ago"
    old = when(_ago(days=3))
    assert len(old) == len("2026-12-06 14:02") and old[4] == "-" and old[13] == ":"
    assert when(None) == "never"


def test_sizes_are_human_and_unknown_is_a_dash() -> None:
    assert size(0) == "0 B"
    assert size(1536) == "1.5 KiB"
    assert size(3 * 1024**3) == "3.0 GiB"
    assert size(None) == "-"


def test_a_bad_request_names_each_field_and_its_problem_like_the_api() -> None:
    with pytest.raises(InvalidRequest) as e:
        parse(RestoreIn, {"backup_id": "", "paths": ["../etc"], "extra": 1})
    fields = {f["field"] for f in e.value.fields}
    assert fields == {"backup_id", "paths", "extra"}
    assert e.value.message.startswith("invalid request: ")
    assert "invalid path '../etc'" in (e.value.hint or "")
