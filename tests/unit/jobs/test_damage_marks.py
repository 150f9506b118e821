"""A restore or drill that finds its backup's stored bytes damaged marks the backup damaged
(as verify does); a policy refusal, a drill's own comparison or any other failure does not."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from common.errors import Damaged, IntegrityError, NotFound, Refused
from common.jobs import record, volume_jobs
from common.jobs.runner import Outcome


@pytest.mark.parametrize(("error", "marked"), [
    (IntegrityError("archive checksum mismatch"), True),
    (Refused("device node"), False),
    (Damaged("3 files differ", {}), False),
    (NotFound("volume", "x"), False),
])
def test_only_damaged_stored_data_marks_the_backup(
        monkeypatch: pytest.MonkeyPatch, error: Exception, marked: bool) -> None:
    seen: list[str] = []
    monkeypatch.setattr(record, "damage_found", lambda ctx, job, backup_id: seen.append(backup_id))

    @volume_jobs._marks_damage
    def body(ctx: Any, job: Any, tracker: Any) -> Outcome:
        raise error

    with pytest.raises(type(error)):
        body(None, SimpleNamespace(backup_id="b1", id="j1"), None)  # type: ignore[arg-type]
    assert seen == (["b1"] if marked else [])


def test_restore_and_drill_are_marked() -> None:
    for body in (volume_jobs.restore, volume_jobs.drill):
        assert body.__wrapped__ is not None  # type: ignore[attr-defined]
