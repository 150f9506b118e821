"""`volkeeper migrations` and `volkeeper migration ID` at 80 columns: no column cut off
(CREATED was cut to "CR"), no job id broken by the wrap, wrapped lines indented under
their first; the next step names the migration's own id, not "ID"."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from cli import migrate_cmds

ID = "f3d39a4f95794a85"


def _migration(state: str = "succeeded") -> dict[str, Any]:
    return {
        "id": ID, "state": state, "source": {"host": "laptop", "volume": "pgdata"},
        "destination": {"host": "laptop", "volume": "pgdata2", "driver": "local"},
        "downtime_seconds": 0.27, "verify_outcome": "passed",
        "created_at": "2026-12-07T19:00:00+00:00", "reason": None,
        "phases": [{"name": "validate", "state": "succeeded", "bytes": 0, "jobs": []},
                   {"name": "pre-copy", "state": "succeeded", "bytes": 401561,
                    "jobs": [{"step": "precopy.backup", "job_id": "f2da04c61cf44bcb"},
                             {"step": "precopy.restore", "job_id": "78146f33a3fe48b4"}]},
                   {"name": "verify", "state": "succeeded", "bytes": 0,
                    "jobs": [{"step": "verify", "job_id": "b11ff6d068274b2b"}]}],
        "report": {}, "next_steps": [
            "containers pgdata-app were stopped for the cut-over and are still stopped "
            f"on the source; recreate them on the new volume (or `volkeeper migration "
            f"rollback {ID}` to go back)"]}


class _Front:
    embedded = False

    def migrations(self, limit: int) -> list[dict[str, Any]]:
        return [_migration(), _migration("rolled_back") | {"id": "0123456789abcdef"}]

    def migration(self, mid: str) -> dict[str, Any]:
        return _migration()


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    @contextlib.contextmanager
    def connect(**_: Any) -> Iterator[_Front]:
        yield _Front()

    monkeypatch.setattr(migrate_cmds, "connect", connect)


def test_the_list_keeps_every_name_and_the_ids_whole(narrow: None,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    migrate_cmds.migrations(limit=50, as_json=False)
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), text
    header = next(line for line in lines if line.startswith("ID"))
    assert header.split() == ["ID", "STATE", "SOURCE", "DESTINATION", "DOWNTIME",
                              "CREATED"], text
    rows = [line for line in lines if line.startswith(("f3d3", "0123"))]
    assert len(rows) == 2 and all("laptop/pgdata2" in r for r in rows), text


def test_one_migration_reads_at_80_columns(narrow: None,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    migrate_cmds.migration(what=ID, migration_id=None, follow=False, md=False,
                           as_json=False)
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), text
    for job in ("precopy.backup=f2da04c61cf44bcb", "precopy.restore=78146f33a3fe48b4",
                "verify=b11ff6d068274b2b"):
        assert any(job in line for line in lines), text
    assert "392.1 KiB" in text  # a size, not a count of bytes
    # a wrapped next step goes on indented, never at the left edge
    assert all(line.startswith(("migration ", "  ")) for line in lines if line), text
    assert f"rollback {ID}" in " ".join(line.strip() for line in lines)


def test_the_evacuations_list_keeps_its_counts_whole(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    from cli import evacuate_cmds
    from common.jobs.evacuations import markdown

    row = {"id": "0314eea345f04a27", "state": "succeeded", "host": "host-a",
           "to_host": "host-b", "volumes": 3, "counts": {"succeeded": 3},
           "bytes": 1204402, "downtime_max_seconds": 0.66,
           "created_at": "2026-12-07T19:00:00+00:00", "migrations": []}

    class Front:
        def evacuations(self, limit: int) -> list[dict[str, Any]]:
            return [row]

    @contextlib.contextmanager
    def connect(**_: Any) -> Iterator[Front]:
        yield Front()

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(evacuate_cmds, "connect", connect)
    evacuate_cmds.evacuations(limit=50, as_json=False)
    text = capsys.readouterr().out
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines()), text
    line = next(x for x in text.splitlines() if x.startswith("0314"))
    assert "3 succeeded" in line and "host-a" in line and "host-b" in line, text
    assert "moved: 1.1 MiB" in markdown(row)  # a size first, not only a byte count


def test_a_rollback_asked_of_a_server_says_it_goes_on_there(
        narrow: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Remotely the command returns while the rollback runs: the migration is still
    shown as it was (no rollback phase yet), so the text says what is happening."""
    monkeypatch.setattr(_Front, "rollback_migration",
                        lambda self, mid: _migration("running"), raising=False)
    migrate_cmds.migration(what="rollback", migration_id=ID, follow=False, md=False,
                           as_json=False)
    text = " ".join(capsys.readouterr().out.split())
    assert f"rolling back: `volkeeper migration {ID} --follow`" in text, text


def test_an_embedded_migration_nobody_drives_says_how_to_go_on(
        narrow: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Embedded, a migration whose `volkeeper migrate` was killed stays "running" with
    its step failed until a command drives it again: `migration ID` says which."""
    monkeypatch.setattr(_Front, "embedded", True)
    monkeypatch.setattr(_Front, "migration", lambda self, mid: _migration("running"))
    migrate_cmds.migration(what=ID, migration_id=None, follow=False, md=False,
                           as_json=False)
    text = " ".join(capsys.readouterr().out.split())
    assert f"`volkeeper migration {ID} --follow`" in text, text
    monkeypatch.setattr(_Front, "migration", lambda self, mid: _migration())
    migrate_cmds.migration(what=ID, migration_id=None, follow=False, md=False,
                           as_json=False)
    assert "--follow" not in capsys.readouterr().out  # a finished one: nothing to drive


def test_the_dry_run_wraps_each_check_under_itself(
        narrow: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    detail = ("the device directory /srv/[old]/pg of volume 'pgb' is not empty (it holds "
              "'mine.txt'): the migration would overwrite and delete its files — choose "
              "an empty directory (--driver-opt device=…) or empty it first")
    result = {"dry_run": True, "ok": False, "plan": "copy laptop/pgdata to laptop/pgb",
              "checks": [{"name": "destination volume", "ok": False, "detail": detail},
                         {"name": "driver", "ok": True, "detail": "driver 'local'"}]}
    monkeypatch.setattr(_Front, "migrate", lambda self, body: result, raising=False)
    with pytest.raises(migrate_cmds.typer.Exit):
        migrate_cmds.migrate(volume="pgdata", to_host="laptop", to_volume="pgb",
                             dry_run=True)
    lines = capsys.readouterr().out.splitlines()
    assert all(len(x) <= 80 for x in lines), lines
    assert lines[0].startswith("FAILED destination volume: ")
    failed = [x for x in lines if not x.startswith(("ok ", "plan: "))]
    assert all(x.startswith("    ") for x in failed[1:]), lines  # under their check
    assert "/srv/[old]/pg" in " ".join(lines)  # plain text, not taken for markup
    assert "ok driver: driver 'local'" in lines
