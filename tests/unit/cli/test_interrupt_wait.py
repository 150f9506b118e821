"""Ctrl-C while an embedded command waits for its job: the job runs in this very process,
so it is cancelled (not silently run to its end behind a bare exit 130) and the command
reports it; a remote front's job is left to its worker (Ctrl-C only stops watching)."""

from __future__ import annotations

from typing import Any

import pytest

from cli.render import wait_for_job


class _Front:
    def __init__(self, embedded: bool) -> None:
        self.embedded = embedded
        self.cancelled: list[str] = []
        self.reads = 0

    def job(self, job_id: str) -> dict[str, Any]:
        self.reads += 1
        if self.reads == 1:
            raise KeyboardInterrupt  # Ctrl-C while waiting
        state = "cancelled" if self.cancelled else "running"
        return {"id": job_id, "state": state, "progress": {}}

    def pause(self, job_id: str, seconds: float, *, until_end: bool = False) -> None:
        return None

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        self.cancelled.append(job_id)
        return {"id": job_id, "state": "running"}


def test_ctrl_c_cancels_the_embedded_job_and_waits_for_it_to_stop(
        capsys: pytest.CaptureFixture[str]) -> None:
    front = _Front(embedded=True)
    job = wait_for_job(front, "j1", quiet=True)  # type: ignore[arg-type]
    assert front.cancelled == ["j1"] and job["state"] == "cancelled"
    assert "interrupted: cancelling job j1" in capsys.readouterr().err


def test_ctrl_c_leaves_a_remote_job_to_its_worker() -> None:
    front = _Front(embedded=False)
    with pytest.raises(KeyboardInterrupt):
        wait_for_job(front, "j1", quiet=True)  # type: ignore[arg-type]
    assert front.cancelled == []
