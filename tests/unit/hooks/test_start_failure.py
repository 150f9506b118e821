"""A container stopped for a backup that cannot be started again is said, not only
logged: the backup may have succeeded, and nothing else would tell that it is down."""

from __future__ import annotations

from typing import Any

import pytest

from common.docker import ContainerRef
from common.errors import DockerError
from common.hooks.around import HooksReport, consistent


class Docker:
    """Stops anything; ``app`` does not start again (a bind mount's source went away)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def stop_container(self, cid: str, timeout: int) -> None:
        pass

    def start_container(self, cid: str) -> None:
        if cid == "c-app":
            raise DockerError("bind source path does not exist: /srv/app")
        self.started.append(cid)

    def container_state(self, cid: str) -> str | None:
        return "exited"


class Recreated(Docker):
    """``old`` is removed before it is stopped, ``web`` while it is down (a Compose
    ``up`` recreating them during the backup)."""

    def __init__(self) -> None:
        super().__init__()
        self.gone: set[str] = set()

    def stop_container(self, cid: str, timeout: int) -> None:
        if cid == "c-old":
            self.gone.add(cid)
            raise DockerError("Docker object not found: No such container: c-old")
        if cid == "c-web":
            self.gone.add(cid)

    def start_container(self, cid: str) -> None:
        if cid in self.gone:
            raise DockerError(f"Docker object not found: No such container: {cid}")
        self.started.append(cid)

    def container_state(self, cid: str) -> str | None:
        return None if cid in self.gone else "exited"


def test_a_container_that_does_not_start_again_is_a_warning_of_the_backup() -> None:
    docker: Any = Docker()
    refs = [ContainerRef("c-app", "app", "running"), ContainerRef("c-db", "db", "running")]
    report = HooksReport()
    with consistent(docker, refs, "backup", report, stop=True):
        pass
    assert docker.started == ["c-db"]
    result = report.as_result()
    assert result["restarted_containers"] == ["db"]
    assert result["hook_warnings"] == [
        "container app was stopped and could not be started again: bind source path "
        "does not exist: /srv/app (it is still down: docker start app)"]


def test_the_cli_says_a_container_is_still_down_not_that_it_was_down_0s(
        capsys: pytest.CaptureFixture[str]) -> None:
    from cli.render import finish

    finish({"id": "j1", "kind": "backup", "state": "succeeded", "volume": "v",
            "host": "laptop", "target": "local", "result": {
                "backup_id": "b1", "file_count": 1, "logical_bytes": 1, "stored_bytes": 1,
                "stop_windows": [
                    {"id": "c-app", "name": "app", "seconds_down": None, "restarted": False,
                     "start_error": "gone"},
                    {"id": "c-db", "name": "db", "seconds_down": 1.25, "restarted": True}],
                "hook_warnings": ["container app was stopped and could not be started "
                                  "again: gone (it is still down: docker start app)"]}},
           as_json=False)
    printed = capsys.readouterr().err
    assert "containers stopped: app NOT started again, db 1.2s" in printed
    assert "warning: container app was stopped and could not be started again" in printed


def test_a_container_removed_during_the_backup_is_neither_an_error_nor_said_to_be_down(
        ) -> None:
    docker: Any = Recreated()
    refs = [ContainerRef(f"c-{n}", n, "running") for n in ("old", "web", "db")]
    report = HooksReport()
    started: list[bool] = []
    with consistent(docker, refs, "backup", report, stop=True,
                    on_started=lambda: started.append(True)):
        pass
    assert docker.started == ["c-db"]
    assert report.warnings() == []
    assert started == [True]  # nothing is left for a recovery to start
    windows = {w["name"]: w for w in report.as_result()["stop_windows"]}
    assert windows["old"]["removed"] and windows["web"]["removed"]
    assert "removed" not in windows["db"] and windows["db"]["restarted"]
