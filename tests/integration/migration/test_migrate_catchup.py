"""The catch-up round of an embedded migration (a private dockerd), as ``volkeeper
migrate`` drives it: what the application writes during the pre-copy is carried by the
catch-up before the stop (the cut-over's sync then writes nothing) and the destination
ends equal to the source; no catch-up without a running container; a catch-up whose
snapshot the target lost fails and rolls back (destination removed, source untouched,
its container running); a cancel during the catch-up rolls back the same way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from common.db import catalog, jobs
from common.jobs.embedded import EmbeddedRuntime
from common.jobs.migration_plan import step_result
from common.jobs.migrations import MigrationService
from tests.fixtures.dockerd import busybox_image
from tests.integration.migration.test_migrate_embedded import _migrate, _volume, runtime
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration
__all__ = ["runtime"]  # the fixture, imported for pytest
IDLE = "trap 'exit 0' TERM; while true; do sleep 0.2; done"


def _idle(docker_host: Any, name: str, volume: str) -> Any:
    """A running container that uses ``volume`` and writes nothing itself (the test
    writes for it, at a known moment)."""
    return docker_host.client().containers.run(
        busybox_image(docker_host), ["sh", "-c", IDLE], name=name, detach=True,
        network_mode="none", volumes={volume: {"bind": "/data", "mode": "rw"}})


def _write_during_the_pre_copy(src: Path) -> Any:
    def write(step: str, m: Any) -> None:
        if step == "precopy.restore":  # the pre-copy's backup is taken; the app writes
            (src / "sub" / "f5.bin").write_bytes(os.urandom(70_000))
            (src / "new.bin").write_bytes(os.urandom(300_000))
            (src / "sub" / "f6.bin").unlink()
            os.chmod(src / "sub" / "f7.bin", 0o640)
    return write


def _results(rt: EmbeddedRuntime, done: dict[str, Any]) -> dict[str, dict[str, Any]]:
    steps = {j["step"]: j["job_id"] for p in done["phases"] for j in p["jobs"]}
    with rt.db.session() as s:
        return {step: step_result(step, jobs.get_job(s, jid)) for step, jid in steps.items()}


def test_what_the_application_wrote_during_the_pre_copy_is_carried_before_the_stop(
        runtime: EmbeddedRuntime, docker_host_a: Any) -> None:
    src = _volume(docker_host_a, "cu-src")
    app = _idle(docker_host_a, "cu-app", "cu-src")
    try:
        done = _migrate(runtime, observer=_write_during_the_pre_copy(src), volume="cu-src",
                        to_host="laptop", to_volume="cu-dst")
        assert done["state"] == "succeeded", done
        assert [p["name"] for p in done["phases"]] == [
            "validate", "pre-copy", "catch-up", "cut-over", "verify"]
        (one,) = done["report"]["catchup"]["rounds"]
        assert one["changed"] and one["bytes_read"] >= 370_000  # (f7.bin: only its mode)
        assert one["apply"]["files_written"] == 2 and one["apply"]["deleted"] == 1
        assert "round 1 carried" in done["report"]["catchup"]["ended"]
        results = _results(runtime, done)
        assert results["catchup.apply.1"]["method"] == "sync"
        final = results["cutover.apply"]
        assert (final["files_written"], final["deleted"]) == (0, 0), final
        assert results["verify"]["ok"]
        dst = Path(docker_host_a.client().volumes.get("cu-dst").attrs["Mountpoint"])
        assert compare_trees(src, dst, check_root=False, mtime_tolerance_ns=10**9) == []
    finally:
        app.remove(force=True)


def test_no_catch_up_when_no_container_runs_on_the_source(
        runtime: EmbeddedRuntime, docker_host_a: Any) -> None:
    _volume(docker_host_a, "cu-quiet", files=5)
    done = _migrate(runtime, volume="cu-quiet", to_host="laptop", to_volume="cu-quiet2")
    assert done["state"] == "succeeded", done
    assert "catch-up" not in [p["name"] for p in done["phases"]]
    assert done["report"]["catchup"]["rounds"] == []
    assert done["report"]["catchup"]["ended"].startswith("skipped: no running container")
    assert "catch-up rounds" not in done["report"]["plan"]


def test_a_catch_up_that_fails_rolls_back_and_leaves_the_source_running(
        runtime: EmbeddedRuntime, docker_host_a: Any) -> None:
    src = _volume(docker_host_a, "cu-lost", files=8)
    app = _idle(docker_host_a, "cu-lost-app", "cu-lost")
    write = _write_during_the_pre_copy(src)

    def lose(step: str, m: Any) -> None:
        write(step, m)
        if step == "catchup.apply.1":  # the target lost the round's snapshot
            with runtime.db.session() as s:
                key = catalog.get_backup(
                    s, m.report["catchup"]["rounds"][0]["backup_id"]).key
            (runtime.settings.home / "backups" / key).unlink()

    try:
        done = _migrate(runtime, observer=lose, volume="cu-lost", to_host="laptop",
                        to_volume="cu-lost-copy")
        assert done["state"] == "rolled_back", done
        assert done["reason"].startswith("catchup.apply.1 failed"), done["reason"]
        assert "cutover.backup" not in [j["step"] for p in done["phases"]
                                        for j in p["jobs"]]
        names = [v.name for v in docker_host_a.client().volumes.list()]
        assert "cu-lost-copy" not in names and "cu-lost" in names
        assert (src / "new.bin").stat().st_size == 300_000  # the source as the app left it
        app.reload()
        assert app.status == "running"
    finally:
        app.remove(force=True)


def test_a_cancel_during_the_catch_up_rolls_back_without_stopping_anything(
        runtime: EmbeddedRuntime, docker_host_a: Any) -> None:
    src = _volume(docker_host_a, "cu-cx", files=8)
    app = _idle(docker_host_a, "cu-cx-app", "cu-cx")
    service = MigrationService(runtime.service)
    write = _write_during_the_pre_copy(src)

    def cancel(step: str, m: Any) -> None:
        write(step, m)
        if step == "catchup.apply.1":
            service.cancel(migration_id=m.id, requested_by="tester")

    try:
        done = _migrate(runtime, observer=cancel, volume="cu-cx", to_host="laptop",
                        to_volume="cu-cx-copy")
        assert done["state"] == "cancelled", done
        steps = [j["step"] for p in done["phases"] for j in p["jobs"]]
        assert "cutover.backup" not in steps and "rollback.start_containers" not in steps
        assert "cu-cx-copy" not in [v.name for v in docker_host_a.client().volumes.list()]
        app.reload()
        assert app.status == "running"
    finally:
        app.remove(force=True)
