"""A policy whose target is unreachable, run by ``volkeeper serve``'s scheduler: each run
fails naming the target, nothing is catalogued, the volume turns overdue at its RPO
(``GET /volumes``), and the webhook hears one "failed" and one "overdue" — one message per
change of state, not one per failed run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.embedded import api_client, serving
from tests.fixtures.util import free_port
from tests.integration.embedded.test_embedded import cli, volume
from tests.integration.notify.test_channels import Receiver, receiver  # noqa: F401

pytestmark = pytest.mark.integration


def test_an_unreachable_target_fails_each_run_turns_the_volume_overdue_and_tells_once(
        embedded_env: dict[str, str], docker_host_a: Any,
        receiver: Receiver, tmp_path: Path) -> None:  # noqa: F811
    env = embedded_env | {
        "VOLKEEPER_NOTIFY_URLS": f"http://127.0.0.1:{receiver.port}/hook",
        "VOLKEEPER_NOTIFY_MIN_INTERVAL_SECONDS": "0",
        "VOLKEEPER_RPO_CHECK_SECONDS": "1",
        "VOLKEEPER_STORAGE_RETRIES": "1",
    }
    (volume(docker_host_a, "rpo-data") / "f.txt").write_text("data")
    cli(env, "targets", "add", "dead", "s3://nowhere/x", "--endpoint-url",
        f"http://127.0.0.1:{free_port()}", "--path-style", "--access-key-id", "AK",
        "--secret-access-key", "SK")
    with serving(env, tmp_path / "serve.log") as url, api_client(url, env) as http:
        http.post("/hosts/laptop/refresh")
        r = http.post("/policies", json={"name": "deadly", "volumes": ["rpo-data"],
                                         "schedule": "@every 2s", "targets": ["dead"],
                                         "format": "tar", "rpo": "3s"})
        assert r.status_code == 201, r.text
        failed: list[dict[str, Any]] = []
        row: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = [j for j in http.get("/jobs", params={"limit": 100}).json()
                    if j["requested_by"] == "policy:deadly" and j["kind"] == "backup"]
            failed = [j for j in runs if j["state"] == "failed"]
            row = next((v for v in http.get("/volumes").json() if v["name"] == "rpo-data"),
                       {})
            events = [json.loads(b)["event"] for _, b in receiver.at("/hook")]
            if len(failed) >= 3 and row.get("overdue") and "overdue" in events:
                break
            time.sleep(0.5)
        assert len(failed) >= 3, failed  # the scheduler kept trying, each run failed
        assert all("'dead'" in (j["error"] or "") for j in failed), failed
        assert row["overdue"] is True and row["policy"] == "deadly", row
        assert row["last_good_backup_at"] is None
        assert http.get("/backups", params={"volume": "rpo-data"}).json() == []
        events = [json.loads(b)["event"] for _, b in receiver.at("/hook")]
        # several failed runs, one message per change: failed once, overdue once
        assert events.count("failed") == 1 and events.count("overdue") == 1, events
