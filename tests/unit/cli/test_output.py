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


def test_a_failed_embedded_job_is_not_also_printed_as_a_warning(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The one-shot CLI prints a library's warning as one line, but not the in-process
    runner's warning of a job that failed: the command prints that job's error itself."""
    import logging

    from cli.main import _Quiet
    from common.jobs import runner

    logger = logging.getLogger("test.quiet")
    handler = _Quiet(logging.WARNING)
    logger.addHandler(handler)
    try:
        logger.warning("job %s failed: %s", "j1", "the disk is full",
                       extra={runner.OUTCOME: True})
        logger.warning("target %s answers slowly", "s3")
    finally:
        logger.removeHandler(handler)
    assert capsys.readouterr().err == "volkeeper: target s3 answers slowly\n"


def test_a_dump_loaded_into_a_container_says_so_not_a_volume_restore(
        capsys: pytest.CaptureFixture[str]) -> None:
    from cli.render import finish

    finish({"id": "j1", "kind": "restore", "state": "succeeded", "volume": "pgdata",
            "host": "laptop", "result": {"loaded": [
                {"container": "shop-db", "kind": "sqlite", "bytes": 2048, "seconds": 0.1,
                 "path": ".volkeeper-dumps/sqlite-shop-db.sql", "output": "",
                 "database": "/data/copy.db"}]}}, as_json=False)
    printed = capsys.readouterr().out
    assert "restored into volume" not in printed and "None" not in printed
    assert ("loaded .volkeeper-dumps/sqlite-shop-db.sql (sqlite) into container shop-db, "
            "database /data/copy.db on laptop: 2.0 KiB") in printed


def test_a_failed_job_shows_its_post_hook_warnings_once_beside_its_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    from cli.errors import CliError
    from cli.render import finish

    pre = "hook pre-backup in container app ('exit 3') exited with code 3"
    post = "hook post-backup in container app ('exit 5') exited with code 5: oops"
    with pytest.raises(CliError):
        finish({"id": "j1", "kind": "backup", "state": "failed", "volume": "v",
                "host": "laptop", "error": pre + "; the backup was not taken",
                "result": {"hook_warnings": [pre, post]}}, as_json=False)
    printed = capsys.readouterr().err
    assert printed.count("exited with code") == 1 and "code 5: oops" in printed


def test_the_rollback_command_of_a_replace_stays_on_one_line_at_80_columns(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import render

    monkeypatch.setenv("COLUMNS", "80")
    render.err.cache_clear()
    try:
        render.finish({"id": "b60b343281174f3b", "kind": "restore", "state": "succeeded",
                       "volume": "pgdata", "host": "vm",
                       "result": {"files_restored": 5, "bytes_restored": 10,
                                  "safety_backup_id": "102f2309a3e04ab6"}}, False)
    finally:
        render.err.cache_clear()
    assert "undo with: volkeeper rollback b60b343281174f3b\n" in capsys.readouterr().err


def _ahead(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def test_times_ahead_read_as_in_so_long_not_as_ages() -> None:
    """A policy's next run 40 s ahead showed as "0s ago", 2 h ahead as a date."""
    from cli.render import upcoming

    assert upcoming(_ahead(seconds=40)) in ("in 40s", "in 39s")
    assert upcoming(_ahead(minutes=3, seconds=5)) == "in 3m"
    assert upcoming(_ahead(hours=5, minutes=1)) == "in 5h"
    later = upcoming(_ahead(days=3))
    assert len(later) == len("2026-12-06 14:02") and later[4] == "-" and later[13] == ":"
    assert upcoming(_ago(minutes=3, seconds=5)) == "3m ago"
    assert upcoming(None) == "-"
