"""Migrations in the fleet when something fails in the later phases: the destination's
worker SIGKILLed in the verify, the destination's host lost (its worker gone until the
host is offline) during the cut-over, the source's worker SIGKILLed in the finish of a
``--remove-source`` (during its safety backup), the source's removal refused after its
safety backup, the via target's endpoint stopped mid pre-copy. Each ends rolled back
with a reason naming the step, the source whole, its containers running, the
destination removed."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fleet import Fleet
from tests.fixtures.util import wait_for
from tests.integration.fleet.test_fleet import mountpoint
from tests.integration.migration.test_migrate_fleet import (
    FINAL,
    _running,
    _start,
    _start_unseen,
    _wait,
    _writer,
)

pytestmark = pytest.mark.integration
SLOW = str(2 << 20)  # bytes per second: the storage transfers of a throttled worker


def _arrived(fleet: Fleet, host: str) -> str | None:
    with fleet.http as c:
        return next((h["inventory_at"] for h in c.get("/hosts").json()
                     if h["name"] == host), None)


def restart(fleet: Fleet, host: str, sig: int = signal.SIGTERM, **env: str) -> None:
    """Stop ``host``'s worker (with ``sig``) and start one with ``env``; return once the
    new one has arrived (its start-up inventory), not on the old one's last heartbeat."""
    before = _arrived(fleet, host)
    fleet.stop_worker(host, sig)
    fleet.start_worker(host, **env)
    wait_for(lambda: _arrived(fleet, host) != before, 60, f"the new worker of {host}",
             interval=0.3)


@contextlib.contextmanager
def throttled(fleet: Fleet, host: str) -> Iterator[None]:
    """``host``'s worker restarted with slow storage transfers; a normal one after."""
    restart(fleet, host, VOLKEEPER_BANDWIDTH_LIMIT=SLOW)
    try:
        yield
    finally:
        restart(fleet, host)


def _kill(fleet: Fleet, host: str) -> None:
    fleet.stop_worker(host, signal.SIGKILL)


def _source(fleet: Fleet, prefix: str, blobs: int = 1) -> tuple[str, Path]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    fleet.docker["host-a"].client().volumes.create(name)
    src = mountpoint(fleet, "host-a", name)
    for i in range(blobs):
        (src / f"blob{i}.bin").write_bytes(os.urandom(1 << 20))
    return name, src


def _contents(src: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in src.iterdir() if p.suffix == ".bin"}


def _kill_while_running(fleet: Fleet, host: str, mid: str, step: str,
                        timeout: float = 180) -> None:
    """SIGKILL ``host``'s worker while the migration's ``step`` job runs. The worker is
    frozen (SIGSTOP) for each look, so the step cannot end between the look and the
    kill (a verify that trusts what the restore recorded takes well under a second)."""
    proc = fleet.procs[f"worker-{host}"]
    deadline = time.monotonic() + timeout
    with fleet.http as c:
        while time.monotonic() < deadline:
            proc.send_signal(signal.SIGSTOP)
            m = c.get(f"/migrations/{mid}").json()
            states = [j["state"] for p in m["phases"] for j in p["jobs"] if j["step"] == step]
            if "running" in states:
                _kill(fleet, host)  # SIGKILL ends a stopped process too
                return
            proc.send_signal(signal.SIGCONT)
            assert m["state"] not in FINAL and not any(
                st in ("succeeded", "failed") for st in states), \
                f"the {step} step ended before it could be killed: {m}"
            time.sleep(0.02)
    raise AssertionError(f"the {step} step of migration {mid} did not run in {timeout}s")


def _volumes(fleet: Fleet, host: str) -> list[str]:
    return [v.name for v in fleet.docker[host].client().volumes.list()]


def _until_running(app: Any, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.reload()
        if app.status == "running":
            break
        time.sleep(0.2)
    return str(app.status)


def _reached(step: str) -> Any:
    def check(m: dict[str, Any]) -> bool:
        return step in {j["step"] for p in m["phases"] for j in p["jobs"]} \
            or m["state"] in FINAL
    return check


def _grow(src: Path, files: int = 8) -> None:
    """New data after the pre-copy's backup: the cut-over's apply and the verify then
    move and read it, seconds at the throttled rate."""
    for i in range(files):
        (src / f"new{i}.bin").write_bytes(os.urandom(2 << 20))


def test_the_destination_worker_killed_in_the_verify_ends_rolled_back(
        fleet: Fleet) -> None:
    name, src = _source(fleet, "mvk")
    app = _writer(fleet, "host-a", name)
    try:
        with throttled(fleet, "host-b"):
            fleet.wait_volume("host-a", name)
            m = _start(fleet, {"volume": name, "host": "host-a", "to_host": "host-b",
                               "via": "s3"})
            _wait(fleet, m["id"], _running("precopy.restore"), timeout=90)
            _grow(src)
            contents = _contents(src)
            _kill_while_running(fleet, "host-b", m["id"], "verify")
        done = _wait(fleet, m["id"], timeout=120)
        assert done["state"] == "rolled_back", done
        assert done["reason"].startswith("verify failed"), done["reason"]
        assert done["verify_outcome"] == "failed"
        assert name not in _volumes(fleet, "host-b")
        assert _until_running(app) == "running"  # stopped for the cut-over, started again
        assert _contents(src) == contents
    finally:
        app.remove(force=True)


def test_the_destination_host_lost_in_the_cut_over_restarts_the_source_at_once(
        fleet: Fleet) -> None:
    """host-b's worker dies while the cut-over's apply runs (the application stopped)
    and stays away until host-b is offline: the rollback starts the application again on
    host-a meanwhile; the destination is removed once host-b is back."""
    name, src = _source(fleet, "mhl")
    app = _writer(fleet, "host-a", name)
    restarted = False
    try:
        restart(fleet, "host-b", VOLKEEPER_BANDWIDTH_LIMIT=SLOW)
        fleet.wait_volume("host-a", name)
        m = _start_unseen(fleet, app, {"volume": name, "host": "host-a",
                                       "to_host": "host-b", "via": "s3"})
        _wait(fleet, m["id"], _running("precopy.restore"), timeout=90)
        _grow(src)
        contents = _contents(src)
        at = _wait(fleet, m["id"], _running("cutover.apply"), timeout=180)
        assert at["state"] == "running", at
        app.reload()
        assert app.status == "exited"  # stopped for the cut-over
        _kill(fleet, "host-b")
        lost = _wait(fleet, m["id"], lambda m: (m["reason"] or "").startswith(
            "cutover.apply failed") and m["report"].get("containers_started"), timeout=90)
        assert lost["state"] == "running", lost  # the destination is not removed yet
        assert lost["report"]["containers_started"] == [f"{name}-app"]
        assert _until_running(app) == "running"  # while host-b is still away
        deadline = time.monotonic() + 30
        while fleet.host_online("host-b") and time.monotonic() < deadline:
            time.sleep(0.5)
        with fleet.http as c:
            dry = c.post("/migrations", json={"volume": name, "host": "host-a",
                                              "to_host": "host-b", "via": "s3",
                                              "dry_run": True}).json()
        assert dry["ok"] is False
        assert any(x["name"] == "destination host" and not x["ok"] for x in dry["checks"])
        restart(fleet, "host-b")
        restarted = True
        done = _wait(fleet, m["id"], timeout=120)
        assert done["state"] == "rolled_back", done
        assert name not in _volumes(fleet, "host-b")
        assert _contents(src) == contents
    finally:
        app.remove(force=True)
        if not restarted:
            restart(fleet, "host-b")


def test_the_source_worker_killed_in_the_finish_keeps_the_source(fleet: Fleet) -> None:
    """``--remove-source``: new data lands in the source after the cut-over, so the
    finish's safety backup uploads it slowly; the source's worker is SIGKILLed in it.
    The rollback looks for the source (there), leaves it, removes the destination."""
    name, src = _source(fleet, "mfk")
    with throttled(fleet, "host-a"):
        fleet.wait_volume("host-a", name)
        m = _start(fleet, {"volume": name, "host": "host-a", "to_host": "host-b",
                           "via": "s3", "remove_source": True, "cutover": "none"})
        _wait(fleet, m["id"], _reached("cutover.apply"), timeout=120)
        _grow(src, files=6)  # after the final backup: only the safety backup takes it
        contents = _contents(src)
        at = _wait(fleet, m["id"], _running("finish.retire"), timeout=120)
        assert at["state"] == "running", at
        time.sleep(1.0)
        _kill(fleet, "host-a")
    done = _wait(fleet, m["id"], timeout=120)
    assert done["state"] == "rolled_back", done
    assert done["reason"].startswith("finish.retire failed"), done["reason"]
    assert done["verify_outcome"] == "passed"
    assert done["report"]["source_removed"] is False
    assert "rollback.check_source" in {j["step"] for p in done["phases"] for j in p["jobs"]}
    assert name in _volumes(fleet, "host-a") and name not in _volumes(fleet, "host-b")
    assert _contents(src) == contents


def test_a_source_removal_refused_after_the_safety_backup_rolls_back(fleet: Fleet
                                                                      ) -> None:
    """A container created on the source after the validation: the finish takes its
    safety backup, then cannot remove the source; the migration rolls back, the source
    and its container as they were."""
    name, src = _source(fleet, "mfr")
    contents = _contents(src)
    fleet.wait_volume("host-a", name)
    m = _start(fleet, {"volume": name, "host": "host-a", "to_host": "host-b", "via": "s3",
                       "remove_source": True})
    from tests.fixtures.dockerd import busybox_image

    late = fleet.docker["host-a"].client().containers.create(
        busybox_image(fleet.docker["host-a"]), ["true"], name=f"{name}-late",
        network_mode="none", volumes={name: {"bind": "/data", "mode": "rw"}})
    try:
        done = _wait(fleet, m["id"], timeout=180)
        assert done["state"] == "rolled_back", done
        assert done["reason"].startswith("finish.retire failed"), done["reason"]
        assert done["report"]["safety_backup_id"]  # noted before the removal was tried
        assert done["report"]["source_removed"] is False
        assert name in _volumes(fleet, "host-a") and name not in _volumes(fleet, "host-b")
        assert _contents(src) == contents
    finally:
        late.remove(force=True)


def test_the_via_target_unreachable_mid_pre_copy_rolls_back_and_fails_the_dry_run(
        fleet: Fleet) -> None:
    from moto.server import ThreadedMotoServer

    from tests.fixtures.s3 import S3Server
    from tests.fixtures.util import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    bucket = f"flaky-{uuid.uuid4().hex[:8]}"
    target = f"flaky-{uuid.uuid4().hex[:6]}"
    running = True
    try:
        s3.client().create_bucket(Bucket=bucket)
        with fleet.http as c:
            r = c.post("/targets", json={
                "name": target, "url": f"s3://{bucket}/m",
                "options": {"endpoint_url": s3.endpoint_url, "path_style": True,
                            "region": s3.region},
                "credentials": {"access_key_id": s3.access_key_id,
                                "secret_access_key": s3.secret_access_key}})
            assert r.status_code == 201, r.text
        name, src = _source(fleet, "mtu", blobs=8)
        contents = _contents(src)
        with throttled(fleet, "host-a"):
            fleet.wait_volume("host-a", name)
            m = _start(fleet, {"volume": name, "host": "host-a", "to_host": "host-b",
                               "via": target})
            at = _wait(fleet, m["id"], _running("precopy.backup"), timeout=60)
            assert at["state"] == "running", at
            time.sleep(1.0)
            server.stop()
            running = False
            done = _wait(fleet, m["id"], timeout=180)
        assert done["state"] == "rolled_back", done
        assert done["reason"].startswith("precopy.backup failed"), done["reason"]
        assert name not in _volumes(fleet, "host-b")
        assert _contents(src) == contents
        with fleet.http as c:
            dry = c.post("/migrations", json={"volume": name, "host": "host-a",
                                              "to_host": "host-b", "via": target,
                                              "dry_run": True}).json()
        bad = {x["name"]: x["detail"] for x in dry["checks"] if not x["ok"]}
        assert dry["ok"] is False and f"target {target}" in bad, dry["checks"]
        assert "is not reachable from host" in bad[f"target {target}"]
    finally:
        if running:
            server.stop()
        with fleet.http as c:
            c.delete(f"/targets/{target}")  # best effort: it may hold a backup
