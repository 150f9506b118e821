"""Policies as users run them: whole ``volkeeper`` processes on one machine with a private
dockerd (embedded), and the same commands with ``--server`` against ``volkeeper serve``.
A label on a volume or on a container using it selects it; ``policy run`` backs up through
the job services as ``policy:NAME``; ``volumes`` shows the policy, RPO and overdue;
retention preview says what would be kept and why; ``apply -f`` plans before it changes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dockerd import busybox_image
from tests.fixtures.embedded import api_client

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def cli(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=180)
    if ok:
        assert p.returncode == 0, f"volkeeper {' '.join(args)}:\n{p.stdout}\n{p.stderr}"
    return p


def js(env: dict[str, str], *args: str) -> Any:
    return json.loads(cli(env, *args, "--json").stdout)


def labelled_volumes(docker: Any, base: str, selector_value: str) -> tuple[str, str, str]:
    """Three volumes: one labelled, one used by a labelled container, one neither."""
    client = docker.client()
    by_volume, by_container, other = f"{base}-vl", f"{base}-ct", f"{base}-no"
    client.volumes.create(by_volume, labels={"volkeeper.policy": selector_value})
    client.volumes.create(by_container)
    client.volumes.create(other)
    client.containers.create(busybox_image(docker), ["true"], name=f"{base}-app",
                             labels={"volkeeper.policy": selector_value},
                             volumes={by_container: {"bind": "/data", "mode": "rw"}})
    return by_volume, by_container, other


def test_issue_example_runs_embedded_and_volumes_show_policy_and_rpo(
        embedded_env: dict[str, str], docker_host_a: Any, fresh_volume_name: str,
        tmp_path: Path) -> None:
    env = embedded_env
    sel = fresh_volume_name  # a label value no other test uses
    vl, ct, other = labelled_volumes(docker_host_a, fresh_volume_name, sel)
    cli(env, "targets", "add", "s3main", f"file://{tmp_path / 'copies'}")
    created = js(env, "policy", "create", "nightly", "--selector", f"volkeeper.policy={sel}",
                 "--schedule", "0 2 * * *", "--tz", "Europe/Berlin", "--target", "local",
                 "--copy-to", "s3main", "--keep-daily", "7", "--keep-weekly", "4",
                 "--keep-monthly", "12", "--rpo", "26h")
    assert created["targets"] == ["local", "s3main"] and created["rpo"] == "26h"
    shown = js(env, "policy", "show", "nightly")
    assert sorted(m["volume"] for m in shown["matches"]) == sorted([vl, ct])

    vols = {v["name"]: v for v in js(env, "volumes")}
    assert vols[vl]["policy"] == "nightly" and vols[ct]["policy"] == "nightly"
    assert vols[vl]["rpo_seconds"] == 26 * 3600 and vols[other]["policy"] is None
    assert vols[vl]["overdue"] is False  # a new policy: not overdue before its RPO

    run = js(env, "policy", "run", "nightly")
    assert sorted(j["volume"] for j in run["jobs"]) == sorted([vl, ct])
    assert {j["state"] for j in run["jobs"]} == {"succeeded"}
    assert {j["requested_by"] for j in run["jobs"]} == {"policy:nightly"}
    backups = js(env, "backups")
    assert sorted(b["volume"] for b in backups if b["target"] == "local") == sorted([vl, ct])
    # without a server the command itself copies to the --copy-to target (3-2-1)
    copies = [j for j in run["followups"] if j["kind"] == "copy"]
    assert len(copies) == 2 and {j["state"] for j in copies} == {"succeeded"}
    assert sorted(b["volume"] for b in js(env, "backups", "--target", "s3main")) == sorted(
        [vl, ct])
    vols = {v["name"]: v for v in js(env, "volumes")}
    assert vols[vl]["last_good_backup_at"] is not None and vols[vl]["overdue"] is False

    preview = js(env, "retention", "preview", "nightly")
    local = {g["volume"]: g for g in preview if g["target"] == "local"}
    assert local[vl]["keep"] == 1 and local[vl]["forget"] == 0
    assert {g["target"] for g in preview} == {"local", "s3main"}
    assert "newest good backup" in local[vl]["backups"][0]["reasons"][0]

    # a volume never backed up turns overdue once its policy is older than the RPO
    cli(env, "policy", "create", "stale", "--volume", other, "--schedule", "@daily",
        "--rpo", "1s")
    time.sleep(1.5)
    vols = {v["name"]: v for v in js(env, "volumes")}
    assert vols[other]["overdue"] is True and vols[vl]["overdue"] is False
    table = " ".join(cli(env | {"COLUMNS": "200"}, "volumes").stdout.split())
    assert "stale OVERDUE" in table and "nightly" in table

    bad = cli(env, "policy", "create", "bad", "--volume", vl, "--schedule", "@daily",
              "--tz", "Mars/Olympus", ok=False)
    assert bad.returncode == 1 and "tz" in bad.stderr and "unknown time zone" in bad.stderr
    # keep-daily 7 keeps the oldest too while there are fewer than 7 days (as restic
    # does): switch to keep-last 1 (0 removes a rule), then a second run forgets the
    # first backups on both targets (by the command, embedded)
    changed = js(env, "policy", "update", "nightly", "--keep-last", "1", "--keep-daily", "0",
                 "--keep-weekly", "0", "--keep-monthly", "0")
    assert changed["retention"] == {"keep_last": 1}
    first = {b["id"] for b in js(env, "backups", "--volume", vl)} | {
        b["id"] for b in js(env, "backups", "--volume", vl, "--target", "s3main")}
    again = js(env, "policy", "run", "nightly")
    forgets = [j for j in again["followups"] if j["kind"] == "forget"]
    assert {j["backup_id"] for j in forgets} >= first, again["followups"]
    assert {j["state"] for j in forgets} == {"succeeded"}
    for target in ("local", "s3main"):
        left = js(env, "backups", "--volume", vl, "--target", target)
        assert len(left) == 1 and left[0]["id"] not in first

    bad = cli(env, "policy", "create", "bad", "--volume", vl, "--schedule", "@daily",
              "--keep-last", "0", ok=False)
    assert bad.returncode == 1 and "keep_last" in bad.stderr
    audit = js(env, "audit", "--action", "policy.")
    assert {"policy.create", "policy.run"} <= {a["action"] for a in audit}


def test_apply_file_plans_then_changes_and_prunes_only_when_asked(
        embedded_env: dict[str, str], docker_host_a: Any, fresh_volume_name: str,
        tmp_path: Path) -> None:
    env = embedded_env
    docker_host_a.client().volumes.create(fresh_volume_name)
    cli(env, "policy", "create", "legacy", "--volume", fresh_volume_name, "--schedule",
        "@daily")
    spec = tmp_path / "policies.yaml"
    spec.write_text(f"""
policies:
  - name: nightly
    volumes: [{fresh_volume_name}]
    schedule: "30 2 * * *"
    tz: Europe/Berlin
    targets: [local]
    retention: {{keep_daily: 7, keep_within: 2d}}
  - name: hourly
    project: shop
    schedule: "@hourly"
    targets: [local]
""")
    plan = js(env, "apply", "-f", str(spec), "--dry-run")
    assert {c["name"]: c["action"] for c in plan["changes"]} == {
        "nightly": "create", "hourly": "create",
        "legacy": "kept (not in the file; --prune deletes it)"}
    assert [p["name"] for p in js(env, "policy", "list")] == ["legacy"]
    human = cli(env, "apply", "-f", str(spec), "--prune").stdout
    assert "+ nightly: create" in human and "- legacy: delete" in human
    assert sorted(p["name"] for p in js(env, "policy", "list")) == ["hourly", "nightly"]
    spec.write_text(spec.read_text().replace('"30 2 * * *"', '"45 2 * * *"'))
    plan = js(env, "apply", "-f", str(spec))
    changes = {c["name"]: c for c in plan["changes"]}
    assert changes["nightly"]["changes"] == {"schedule": ["30 2 * * *", "45 2 * * *"]}
    assert changes["hourly"]["action"] == "unchanged"
    spec.write_text(spec.read_text().replace("tz: Europe/Berlin", "tz: Nowhere/Land"))
    bad = cli(env, "apply", "-f", str(spec), ok=False)
    assert bad.returncode == 1 and "tz" in bad.stderr
    assert js(env, "policy", "show", "nightly")["schedule"] == "45 2 * * *"


def test_the_server_front_gives_the_same_answers_and_enforces_roles(
        embedded_env: dict[str, str], embedded_server: str, docker_host_a: Any,
        fresh_volume_name: str) -> None:
    env = embedded_env | {"VOLKEEPER_SERVER": embedded_server}
    sel = fresh_volume_name
    vl, ct, _ = labelled_volumes(docker_host_a, fresh_volume_name, sel)
    with api_client(embedded_server, embedded_env) as http:
        http.post("/hosts/laptop/refresh")
    created = js(env, "policy", "create", "web", "--selector", f"volkeeper.policy={sel}",
                 "--schedule", "@every 6h", "--keep-last", "3")
    assert created["rpo"] == "12h" and created["rpo_default"] is True
    assert js(env, "policy", "update", "web", "--keep-daily", "7")["retention"] == {
        "keep_last": 3, "keep_daily": 7}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the server's inventory sees the new volumes
        matches = js(env, "policy", "show", "web")["matches"]
        if len(matches) == 2:
            break
        time.sleep(0.5)
    assert sorted(m["volume"] for m in matches) == sorted([vl, ct])
    run = js(env, "policy", "run", "web")
    assert sorted(j["volume"] for j in run["jobs"]) == sorted([vl, ct])
    assert {j["requested_by"] for j in run["jobs"]} == {"policy:web"}
    for j in run["jobs"]:
        done = js(env, "job", j["id"], "--follow")
        assert done["state"] == "succeeded", done
    with api_client(embedded_server, embedded_env) as http:
        viewer = http.post("/tokens", json={"name": "ro", "role": "viewer"}).json()["secret"]
    ro = env | {"VOLKEEPER_API_TOKEN": viewer}
    assert [p["name"] for p in js(ro, "policy", "list")] == ["web"]
    denied = cli(ro, "policy", "delete", "web", ok=False)
    assert denied.returncode == 1 and "admin" in denied.stderr
    denied = cli(ro, "policy", "run", "web", ok=False)
    assert denied.returncode == 1 and "operator" in denied.stderr
    cli(env, "policy", "delete", "web")
    assert js(env, "policy", "list") == []
