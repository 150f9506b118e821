"""Notifications from a fleet worker (a real Celery worker process): a backup that fails
on host-a sends one signed webhook from that worker, the next good backup "recovered"."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.fleet import Fleet
from tests.fixtures.util import free_port, wait_for
from tests.integration.fleet.test_fleet import mountpoint, submit
from tests.integration.notify.test_channels import Receiver

pytestmark = pytest.mark.integration
SECRET = "fleet-webhook-secret"
CREDENTIAL = "notify-test-secret-access-key"


@pytest.fixture
def notifying_host_a(fleet: Fleet) -> Iterator[Receiver]:
    """host-a's worker restarted with notifications to a receiver in this test."""
    r = Receiver()
    fleet.stop_worker("host-a")
    fleet.start_worker("host-a", VOLKEEPER_NOTIFY_URLS=f"http://127.0.0.1:{r.port}/hook",
                       VOLKEEPER_NOTIFY_WEBHOOK_SECRET=SECRET,
                       VOLKEEPER_NOTIFY_MIN_INTERVAL_SECONDS="0")
    try:
        yield r
    finally:
        fleet.stop_worker("host-a")
        fleet.start_worker("host-a")
        r.server.shutdown()


def test_a_failed_backup_on_a_worker_sends_one_signed_webhook_and_then_recovered(
        fleet: Fleet, notifying_host_a: Receiver) -> None:
    dead = f"dead-{uuid.uuid4().hex[:6]}"
    with fleet.http as c:
        r = c.post("/targets", json={
            "name": dead, "url": "s3://nowhere/x",
            "options": {"endpoint_url": f"http://127.0.0.1:{free_port()}", "path_style": True},
            "credentials": {"access_key_id": "AK", "secret_access_key": CREDENTIAL}})
        assert r.status_code == 201, r.text
    fleet.docker["host-a"].client().volumes.create("nf-data")
    (mountpoint(fleet, "host-a", "nf-data") / "f").write_text("x")
    fleet.wait_volume("host-a", "nf-data")
    for _ in range(2):
        job = fleet.wait_job(submit(fleet, "/backups", {"volume": "nf-data", "host": "host-a",
                                                        "target": dead})["id"])
        assert job["state"] == "failed"
    ok = fleet.wait_job(submit(fleet, "/backups", {"volume": "nf-data", "host": "host-a",
                                                   "target": "s3", "format": "tar"})["id"])
    assert ok["state"] == "succeeded", ok["error"]
    # the worker notifies after it recorded the outcome: the job may read succeeded first
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: len(notifying_host_a.at("/hook")) >= 2, 30, "the recovered webhook")
    posts: list[tuple[dict[str, str], bytes]] = notifying_host_a.at("/hook")
    events: list[dict[str, Any]] = [json.loads(b) for _, b in posts]
    assert [(e["event"], e["subject"]) for e in events] == [
        ("failed", "host-a/nf-data"), ("recovered", "host-a/nf-data")]
    for headers, body in posts:
        assert headers["X-Volkeeper-Signature"] == "sha256=" + hmac.new(
            SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert all(CREDENTIAL not in b.decode() for _, b in posts)  # never a credential
