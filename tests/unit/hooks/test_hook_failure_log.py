"""A failing hook is reported once: as the job's error (``fail``) or as a warning."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from common.docker import ContainerRef
from common.hooks import exec_hooks
from common.hooks.exec_hooks import HookFailed, HookRun, run_hooks
from common.jobs.runner import OUTCOME


def _failing(on_error: str) -> Any:
    def run(docker: Any, c: ContainerRef, when: str, what: str) -> HookRun:
        return HookRun(c.name, f"{when}-{what}", "exit 3", 3, 0.1, "oops",
                       on_error=on_error, ok=False)
    return run


APP = ContainerRef("c1", "app", "running", {"volkeeper.pre-backup": "exit 3"})


def test_a_failing_fail_hook_is_the_error_only_not_also_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(exec_hooks, "run_hook", _failing("fail"))
    with caplog.at_level(logging.WARNING), pytest.raises(HookFailed, match="code 3: oops"):
        run_hooks(None, [APP], "pre", "backup", [])  # type: ignore[arg-type]
    assert not [r for r in caplog.records if "oops" in r.getMessage()]


@pytest.mark.parametrize("on_error,raise_on_fail", [("warn", True), ("fail", False)])
def test_a_failing_hook_that_does_not_fail_the_job_is_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        on_error: str, raise_on_fail: bool) -> None:
    monkeypatch.setattr(exec_hooks, "run_hook", _failing(on_error))
    runs: list[HookRun] = []
    with caplog.at_level(logging.WARNING):
        run_hooks(None, [APP], "pre", "backup", runs,  # type: ignore[arg-type]
                  raise_on_fail=raise_on_fail)
    assert len(runs) == 1
    logged = [r for r in caplog.records if "oops" in r.getMessage()]
    assert [r.getMessage() for r in logged] == [
        "hook pre-backup in container app ('exit 3') exited with code 3: oops"]
    # a worker logs it; the one-shot CLI prints the job's hook_warnings instead (once)
    assert getattr(logged[0], OUTCOME) is True


def test_a_failing_hook_says_the_end_of_its_output_not_only_its_last_line() -> None:
    """Docker reads stdout and stderr through two pipes: ``echo starting; echo FATAL >&2;
    exit 3`` may come back as ``FATAL…\\nstarting\\n``; the error keeps both."""
    run = HookRun("db", "pre-backup", "…", 3, 0.1, "FATAL: cannot checkpoint\nstarting\n",
                  ok=False)
    assert run.describe().endswith("exited with code 3: FATAL: cannot checkpoint | starting")
    many = HookRun("db", "pre-backup", "…", 1, 0.1, "".join(f"line {i}\n" for i in range(9)),
                   ok=False)
    assert many.describe().endswith("code 1: line 6 | line 7 | line 8")


def test_a_post_hook_failing_the_job_says_the_stored_backup_is_forgotten(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exec_hooks, "run_hook", _failing("fail"))
    post = ContainerRef("c1", "app", "running", {"volkeeper.post-backup": "exit 3"})
    with pytest.raises(HookFailed, match="code 3: oops; the backup it followed was stored "
                                         "and is forgotten again"):
        run_hooks(None, [post], "post", "backup", [])  # type: ignore[arg-type]
