"""Embedded migrations on one host (a private dockerd), driven in this process as
``volkeeper migrate`` drives them: a plain volume to a ``local`` volume with bind
options while a container writes into it, content and metadata compared; a verify
difference injected rolls back with the source intact and its container running; the
dry run names bad inputs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from common.config import Settings
from common.db import jobs
from common.db.models import Backup
from common.jobs import host, migration_steps
from common.jobs.embedded import EmbeddedRuntime
from common.jobs.migration_flow import Coordinator
from common.jobs.migration_plan import step_result
from common.jobs.migrations import MigrationService
from tests.fixtures.dockerd import busybox_image
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(tmp_path: Path, docker_host_a: Any) -> Iterator[EmbeddedRuntime]:
    settings = Settings(home=tmp_path / "home", docker_host=docker_host_a.url,
                        host_name="laptop",
                        repository_password=SecretStr("migrate me safely please"),
                        repository_kdf_n=2**14)
    with EmbeddedRuntime(settings, background=False) as rt:
        yield rt


def _volume(docker_host: Any, name: str, files: int = 20) -> Path:
    docker_host.client().volumes.create(name)
    root = Path(docker_host.client().volumes.get(name).attrs["Mountpoint"])
    (root / "sub" / "deep").mkdir(parents=True)
    for i in range(files):
        (root / "sub" / f"f{i}.bin").write_bytes(os.urandom(1000 + 997 * i))
    (root / "sub" / "deep" / "link").symlink_to("../f1.bin")
    os.link(root / "sub" / "f2.bin", root / "hard.bin")
    os.chmod(root / "sub" / "f3.bin", 0o600)
    os.chown(root / "sub" / "f4.bin", 1234, 4321)
    return root


def _writer(docker_host: Any, name: str, volume: str) -> Any:
    image = busybox_image(docker_host)
    return docker_host.client().containers.run(
        image, ["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do "
                "echo $i >> /data/log.txt; i=$((i+1)); sleep 0.05; done"], name=name, detach=True,
        volumes={volume: {"bind": "/data", "mode": "rw"}})


def _before_the_verify(monkeypatch: pytest.MonkeyPatch, then: Any) -> None:
    """Call ``then()`` in the cut-over's apply job once its apply is done, right before
    its verify (the two are one job on the destination: no step of the coordinator
    between them)."""
    verify = migration_steps._then_verify

    def hooked(*args: Any, **kw: Any) -> Any:
        then()
        return verify(*args, **kw)

    monkeypatch.setattr(migration_steps, "_then_verify", hooked)


def _migrate(rt: EmbeddedRuntime, observer: Any = None, **request: Any) -> dict[str, Any]:
    host.refresh_inventory(rt.ctx)  # as a command's start-up or the inventory loop does
    service = MigrationService(rt.service)
    m = service.submit(request=request, requested_by="tester")
    Coordinator(rt.service, observer=observer).run(m["id"], timeout=120)
    return service.get(m["id"])


def test_a_volume_moves_to_a_bind_volume_while_its_container_writes(
        runtime: EmbeddedRuntime, docker_host_a: Any, tmp_path: Path) -> None:
    src = _volume(docker_host_a, "mig-src")
    # what the archive API loses (a pre-copy through it left the file allocated, which
    # the verify trusted): the restore writes into the bound directory itself
    with open(src / "sparse.img", "wb") as f:
        f.truncate(4 << 20)
        f.seek(1 << 20)
        f.write(b"x" * 4096)
    os.setxattr(src / "sub" / "f5.bin", "user.tag", b"kept")
    writer = _writer(docker_host_a, "mig-writer", "mig-src")
    device = tmp_path / "bind-dest"
    device.mkdir()
    try:
        time.sleep(0.3)
        done = _migrate(runtime, volume="mig-src", to_host="laptop", to_volume="mig-dst",
                        driver="local", driver_opts={"type": "none", "o": "bind",
                                                     "device": str(device)})
        assert done["state"] == "succeeded", done
        assert done["verify_outcome"] == "passed"
        assert done["downtime_seconds"] is not None and done["downtime_seconds"] >= 0
        assert [p["name"] for p in done["phases"]] == [
            "validate", "pre-copy", "catch-up", "cut-over", "verify"]
        writer.reload()
        assert writer.status == "exited"  # stopped for the cut-over, left stopped
        vol = docker_host_a.client().volumes.get("mig-dst")
        assert vol.attrs["Driver"] == "local" and vol.attrs["Options"]["o"] == "bind"
        assert compare_trees(src, device, check_root=False, mtime_tolerance_ns=10**9) == []
        assert (device / "sparse.img").stat().st_blocks * 512 < 1 << 20
        assert os.getxattr(device / "sub" / "f5.bin", "user.tag") == b"kept"
        assert (device / "log.txt").read_text() == (src / "log.txt").read_text()
        steps = {j["step"]: j["job_id"] for p in done["phases"] for j in p["jobs"]}
        with runtime.db.session() as s:
            result = step_result("verify", jobs.get_job(s, steps["verify"]))
            restored = jobs.get_job(s, steps["precopy.restore"]).result
        # the cut-over's apply and the verify: one job on the destination, each step
        # with its own span (split where the verify began)
        assert steps["verify"] == steps["cutover.apply"]
        spans = {j["step"]: j for p in done["phases"] for j in p["jobs"]}
        assert spans["cutover.apply"]["finished_at"] == spans["verify"]["started_at"]
        assert spans["verify"]["started_at"][:19] == result["started_at"][:19]
        assert spans["verify"]["state"] == spans["cutover.apply"]["state"] == "succeeded"
        assert result["seconds"] >= 0
        assert "precopy.verify" not in steps  # the restore's record is the baseline
        assert restored["files_recorded"] >= 20  # what the pre-copy's restore wrote
        # (a bind volume's root mtime may differ in its last digits: the sync sets it)
        assert all(p.startswith("/:") for p in restored["record_problems"]), restored
        assert result["ok"] and result["files_trusted"] >= 20
    finally:
        writer.remove(force=True)


def test_a_verify_difference_rolls_back_and_the_source_keeps_running(
        runtime: EmbeddedRuntime, docker_host_a: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _volume(docker_host_a, "mig-bad", files=5)
    writer = _writer(docker_host_a, "mig-bad-writer", "mig-bad")
    before = sorted(p.name for p in (src / "sub").iterdir())

    def inject() -> None:  # someone writes into the destination before the verify
        dst = docker_host_a.client().volumes.get("mig-bad-copy").attrs["Mountpoint"]
        Path(dst, "intruder.txt").write_text("not from the source")

    _before_the_verify(monkeypatch, inject)
    try:
        done = _migrate(runtime, volume="mig-bad", to_host="laptop",
                        to_volume="mig-bad-copy")
        assert done["state"] == "rolled_back", done
        assert done["verify_outcome"] == "failed"
        assert "verify failed" in done["reason"] and "intruder.txt" in done["reason"]
        names = [v.name for v in docker_host_a.client().volumes.list()]
        assert "mig-bad-copy" not in names and "mig-bad" in names
        assert sorted(p.name for p in (src / "sub").iterdir()) == before
        writer.reload()
        assert writer.status == "running"
    finally:
        writer.remove(force=True)


def test_the_dry_run_names_each_bad_input(runtime: EmbeddedRuntime,
                                         docker_host_a: Any) -> None:
    _volume(docker_host_a, "mig-dry", files=5)
    docker_host_a.client().volumes.create("mig-taken")
    service = MigrationService(runtime.service)

    def problems(**request: Any) -> list[str]:
        out = service.submit(request={"volume": "mig-dry", "dry_run": True} | request)
        assert out["dry_run"] is True
        return [c["detail"] for c in out["checks"] if not c["ok"]]

    ok = service.submit(request={"volume": "mig-dry", "to_host": "laptop",
                                 "to_volume": "mig-free", "dry_run": True})
    assert ok["ok"] is True, ok["checks"]
    assert "mig-free" in ok["plan"]
    assert any("unknown" in p or "not" in p for p in problems(to_host="elsewhere"))
    # named where the user reads it (not "this host": the check runs on the destination)
    assert any("already exists on host laptop" in p
               for p in problems(to_host="laptop", to_volume="mig-taken"))
    bad_driver = problems(to_host="laptop", to_volume="mig-x", driver="nosuchdriver")
    assert any("'nosuchdriver' is not available" in p for p in bad_driver)
    bad_opt = problems(to_host="laptop", to_volume="mig-x", driver_opts={"colour": "red"})
    assert any("no option colour" in p for p in bad_opt)
    assert any("does not exist" in p
               for p in service.submit(request={"volume": "mig-none", "to_host": "laptop",
                                                "to_volume": "x", "dry_run": True})["checks"]
               if not p["ok"] for p in [p["detail"]])
    names = [v.name for v in docker_host_a.client().volumes.list()]
    assert "mig-free" not in names and not any(n.startswith("volkeeper-probe") for n in names)


def test_a_cancel_during_the_cut_over_rolls_back_and_starts_the_container_again(
        runtime: EmbeddedRuntime, docker_host_a: Any) -> None:
    _volume(docker_host_a, "mig-cx", files=5)
    writer = _writer(docker_host_a, "mig-cx-writer", "mig-cx")
    service = MigrationService(runtime.service)

    def cancel(step: str, m: Any) -> None:
        if step == "cutover.apply":  # the containers are down, the final backup is made
            service.cancel(migration_id=m.id, requested_by="tester")

    try:
        done = _migrate(runtime, observer=cancel, volume="mig-cx", to_host="laptop",
                        to_volume="mig-cx-copy")
        assert done["state"] == "cancelled", done
        assert done["reason"] == "cancelled by tester"
        assert [p["name"] for p in done["phases"]][-1] == "rollback"
        assert done["report"]["containers_started"] == ["mig-cx-writer"]
        names = [v.name for v in docker_host_a.client().volumes.list()]
        assert "mig-cx-copy" not in names
        writer.reload()
        assert writer.status == "running"
        with pytest.raises(Exception, match="already finished"):
            service.cancel(migration_id=done["id"])
    finally:
        writer.remove(force=True)


@pytest.mark.parametrize("when", ["cutover.backup", "cutover.apply"])
def test_a_destination_file_changed_behind_the_sync_s_back_is_found_by_the_verify(
        runtime: EmbeddedRuntime, docker_host_a: Any, when: str) -> None:
    """Same size and mtime, right after the pre-copy's restore or after the cut-over's
    backup: the sync trusts it and leaves it; the verify does not (its ctime moved since
    the restore recorded what it wrote) and the migration rolls back."""
    name = f"mig-sly-{when.replace('.', '-')}"
    _volume(docker_host_a, name, files=5)

    def tamper(step: str, m: Any) -> None:
        if step == when:
            dst = Path(docker_host_a.client().volumes.get(f"{name}-copy").attrs["Mountpoint"])
            f = dst / "sub" / "f3.bin"
            st = f.stat()
            f.write_bytes(b"x" * st.st_size)
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    done = _migrate(runtime, observer=tamper, volume=name, to_host="laptop",
                    to_volume=f"{name}-copy")
    assert done["state"] == "rolled_back", done
    assert "sub/f3.bin: content: differs" in done["reason"]
    assert f"{name}-copy" not in [v.name for v in docker_host_a.client().volumes.list()]


@pytest.mark.parametrize("tamper", [False, True])
def test_files_the_sync_wrote_are_trusted_by_the_verify_and_a_later_write_is_found(
        runtime: EmbeddedRuntime, docker_host_a: Any, tamper: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The source changes between the pre-copy and the cut-over: the cut-over's sync
    writes those files and records them, and the verify trusts them (reads none again);
    a byte written into one of them after the sync (same size and mtime) is still found
    (its ctime moved since the sync recorded it) and the migration rolls back."""
    name = f"mig-rec-{int(tamper)}"
    src = _volume(docker_host_a, name, files=6)

    def observe(step: str, m: Any) -> None:
        if step == "cutover.backup":  # after the pre-copy: the application writes
            (src / "sub" / "f1.bin").write_bytes(os.urandom(1500))
            with open(src / "sub" / "f5.bin", "r+b") as f:
                f.seek(10)
                f.write(b"changed")
            (src / "new.txt").write_text("new before the cut-over")
            (src / "sub" / "f0.bin").unlink()

    def write_after_the_sync() -> None:
        dst = Path(docker_host_a.client().volumes.get(f"{name}-copy").attrs["Mountpoint"])
        f = dst / "sub" / "f5.bin"
        st = f.stat()
        with open(f, "r+b") as out:
            out.seek(10)
            out.write(b"CHANGED")
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    if tamper:
        _before_the_verify(monkeypatch, write_after_the_sync)
    done = _migrate(runtime, observer=observe, volume=name, to_host="laptop",
                    to_volume=f"{name}-copy")
    if tamper:
        assert done["state"] == "rolled_back", done
        assert "sub/f5.bin: content: differs" in done["reason"]
        return
    assert done["state"] == "succeeded", done
    dst = Path(docker_host_a.client().volumes.get(f"{name}-copy").attrs["Mountpoint"])
    assert compare_trees(src, dst, check_root=False) == []
    steps = {j["step"]: j["job_id"] for p in done["phases"] for j in p["jobs"]}
    with runtime.db.session() as s:
        synced = step_result("cutover.apply", jobs.get_job(s, steps["cutover.apply"]))
        verified = step_result("verify", jobs.get_job(s, steps["verify"]))
    assert synced["method"] == "sync" and synced["files_written"] == 3
    assert synced["files_recorded"] == 3
    # f1 and f5 changed: the chunks they kept known from the record and the pre-copy's
    # snapshot (the final backup's parent), not read
    assert synced["files_known"] == 2
    # the destination held the pre-copy's snapshot (the final backup's parent): what did
    # not change since was not looked at — sub/deep not entered, hard.bin, f3, f4 kept
    assert synced["trusted"] and synced["subtrees_skipped"] == 1, synced
    assert synced["files_held"] >= 3
    files = sum(1 for p in dst.rglob("*") if p.is_file() and not p.is_symlink())
    assert verified["ok"] and verified["files_trusted"] == files  # none read again


def test_recreate_containers_moves_them_onto_the_new_volume_and_a_rollback_undoes_it(
        runtime: EmbeddedRuntime, docker_host_a: Any) -> None:
    _volume(docker_host_a, "mig-rc", files=5)
    client = docker_host_a.client()
    writer = client.containers.run(
        busybox_image(docker_host_a), ["sh", "-c", "trap 'exit 0' TERM; while true; do "
                                       "echo $KEEP >> /data/log.txt; sleep 0.05; done"],
        name="mig-rc-app", detach=True, environment={"KEEP": "kept"},
        labels={"app": "rc"}, restart_policy={"Name": "unless-stopped"},
        volumes={"mig-rc": {"bind": "/data", "mode": "rw"}})
    old_id = writer.id
    try:
        time.sleep(0.3)
        done = _migrate(runtime, volume="mig-rc", to_host="laptop", to_volume="mig-rc-new",
                        recreate_containers=True)
        assert done["state"] == "succeeded", done
        assert [c["name"] for c in done["report"]["containers_recreated"]] == ["mig-rc-app"]
        assert any("were recreated" in s for s in done["next_steps"]), done
        new = client.containers.get("mig-rc-app")
        assert new.id != old_id and new.status == "running"
        assert [(m["Name"], m["Destination"]) for m in new.attrs["Mounts"]] == [
            ("mig-rc-new", "/data")]
        assert new.attrs["Config"]["Labels"]["app"] == "rc"
        assert "KEEP=kept" in new.attrs["Config"]["Env"]
        assert new.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        old = client.containers.get(old_id)
        assert old.name == f"mig-rc-app-pre-migration-{done['id']}"
        assert old.status == "exited"
        dst = Path(client.volumes.get("mig-rc-new").attrs["Mountpoint"])
        src = Path(client.volumes.get("mig-rc").attrs["Mountpoint"])
        lines = len((dst / "log.txt").read_text().splitlines())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and \
                len((dst / "log.txt").read_text().splitlines()) == lines:
            time.sleep(0.1)
        assert len((dst / "log.txt").read_text().splitlines()) > lines  # writes go there
        frozen = (src / "log.txt").read_text()

        service = MigrationService(runtime.service)
        service.rollback(migration_id=done["id"], requested_by="tester")
        Coordinator(runtime.service).run(done["id"], timeout=120)
        back = service.get(done["id"])
        assert back["state"] == "rolled_back", back
        app = client.containers.get("mig-rc-app")
        assert app.id == old_id and app.status == "running"
        assert "mig-rc-new" not in [v.name for v in client.volumes.list()]
        assert [c.name for c in client.containers.list(all=True)
                if c.name.startswith("mig-rc-app")] == ["mig-rc-app"]
        assert (src / "log.txt").read_text().startswith(frozen)
    finally:
        for c in client.containers.list(all=True):
            if c.name.startswith("mig-rc-app"):
                c.remove(force=True)


def test_recreate_containers_is_refused_with_remove_source(runtime: EmbeddedRuntime,
                                                     docker_host_a: Any) -> None:
    _volume(docker_host_a, "mig-rcx", files=5)
    out = MigrationService(runtime.service).submit(request={
        "volume": "mig-rcx", "to_host": "laptop", "to_volume": "mig-rcx2",
        "recreate_containers": True, "remove_source": True, "dry_run": True})
    bad = [c["detail"] for c in out["checks"] if not c["ok"]]
    assert any("--recreate-containers needs" in d for d in bad), out["checks"]


def test_the_pre_copy_ignores_the_volumes_backup_labels_and_stops_nothing(
        runtime: EmbeddedRuntime, docker_host_a: Any) -> None:
    """The pre-copy runs while the application runs (docs/migration.md): the volume's
    stop-during-backup label, its containers' backup hooks and its excludes are for its
    backups, not for a migration, which copies every file and stops only at a cut-over
    (none here)."""
    client = docker_host_a.client()
    client.volumes.create("mig-lab", labels={"volkeeper.stop-during-backup": "true",
                                             "volkeeper.exclude": "*.tmp"})
    src = Path(client.volumes.get("mig-lab").attrs["Mountpoint"])
    (src / "data.txt").write_text("kept")
    (src / "scratch.tmp").write_text("also moves")
    app = client.containers.run(
        busybox_image(docker_host_a), ["sh", "-c", "trap 'exit 0' TERM; sleep 100000"],
        name="mig-lab-app", detach=True, volumes={"mig-lab": {"bind": "/data", "mode": "rw"}},
        labels={"volkeeper.pre-backup": "echo ran >> /data/hook.mark",
                "volkeeper.stop-timeout": "2"})
    try:
        started = client.api.inspect_container(app.id)["State"]["StartedAt"]
        done = _migrate(runtime, volume="mig-lab", to_host="laptop", to_volume="mig-lab-dst",
                        cutover="none")
        assert done["state"] == "succeeded", done
        app.reload()
        assert app.status == "running"
        assert client.api.inspect_container(app.id)["State"]["StartedAt"] == started
        assert not (src / "hook.mark").exists()
        dst = Path(client.volumes.get("mig-lab-dst").attrs["Mountpoint"])
        assert compare_trees(src, dst, check_root=False) == []
        steps = {j["step"]: j["job_id"] for p in done["phases"] for j in p["jobs"]}
        with runtime.db.session() as s:
            precopy = jobs.get_job(s, steps["precopy.backup"]).result
        assert not precopy.get("stop_windows") and not precopy.get("hooks"), precopy
    finally:
        app.remove(force=True)


def test_a_rollback_on_request_keeps_what_was_written_into_the_destination(
        runtime: EmbeddedRuntime, docker_host_a: Any) -> None:
    """A succeeded migration's destination is where the application runs next: a
    rollback asked for later removes it only after a pinned backup of it, named by the
    report, so what was written there since is not lost."""
    _volume(docker_host_a, "mig-rb", files=5)
    done = _migrate(runtime, volume="mig-rb", to_host="laptop", to_volume="mig-rb-new")
    assert done["state"] == "succeeded", done
    client = docker_host_a.client()
    dst = Path(client.volumes.get("mig-rb-new").attrs["Mountpoint"])
    (dst / "written-after.txt").write_text("the application's new data")

    service = MigrationService(runtime.service)
    service.rollback(migration_id=done["id"], requested_by="tester")
    Coordinator(runtime.service).run(done["id"], timeout=120)
    back = service.get(done["id"])
    assert back["state"] == "rolled_back", back
    assert "mig-rb-new" not in [v.name for v in client.volumes.list()]
    kept = back["report"]["destination_backup_id"]
    assert any(kept in s and "volkeeper restore" in s for s in back["next_steps"]), back
    with runtime.db.session() as s:
        row = s.get(Backup, kept)
        assert row is not None and row.pinned and row.volume == "mig-rb-new"
        assert "migration-rollback" in (row.tags or [])
    job_id = runtime.service.submit_restore(backup_id=kept, into="mig-rb-back").id
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with runtime.db.session() as s:
            state = jobs.get_job(s, job_id).state
        if state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert state == "succeeded"
    back_dir = Path(client.volumes.get("mig-rb-back").attrs["Mountpoint"])
    assert (back_dir / "written-after.txt").read_text() == "the application's new data"


def test_a_rolled_back_bind_destination_names_the_files_left_in_its_directory(
        runtime: EmbeddedRuntime, docker_host_a: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Removing a ``local`` bind volume leaves its device directory's files: the rollback
    does not delete them (they could be someone's) but says so, since a migration there
    again is refused until the directory is empty."""
    _volume(docker_host_a, "mig-bl", files=5)
    device = tmp_path / "bind-left"
    device.mkdir()

    def inject() -> None:
        (device / "intruder.txt").write_text("not from the source")

    _before_the_verify(monkeypatch, inject)
    done = _migrate(runtime, volume="mig-bl", to_host="laptop", to_volume="mig-bl-dst",
                    driver="local", driver_opts={"type": "none", "o": "bind",
                                                 "device": str(device)})
    assert done["state"] == "rolled_back", done
    assert "mig-bl-dst" not in [v.name for v in docker_host_a.client().volumes.list()]
    assert (device / "sub" / "f1.bin").exists()  # left, not deleted
    assert done["report"]["destination_files_left_in"] == str(device)
    assert any(str(device) in s and "empty it" in s for s in done["next_steps"]), done
