"""A secrets scan after a full fleet scenario (issue 11): an S3 target with credentials, a
repo backup with a repository passphrase (the target's key file on the workers), ``keys
add`` with a new passphrase, a read-data verify and a restore — then every log file, every
row of every PostgreSQL table, every API response of the scenario and every list endpoint,
every Redis key (queued messages included) and Flower's pages are searched for the
passphrases, the S3 access key id and secret key, the fleet's secret key, and the
passwords in a volume's label and in a container's pre-backup hook label (which the hook
still runs with): none holds any of them."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.fixtures.dockerd import busybox_image
from tests.fixtures.fleet import Fleet
from tests.fixtures.util import wait_for
from tests.integration.fleet.test_fleet import mountpoint

pytestmark = pytest.mark.integration




_BASE64 = re.compile(rb"[A-Za-z0-9+/]{24,}={0,2}")


class Monitor(threading.Thread):
    """Every command Redis executes while it runs (``MONITOR``): each Celery message as it
    is pushed, every progress publish, every key written — not only what is left at the
    end."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client: Any = redis.Redis.from_url(url)
        self.commands: list[str] = []
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        with self.client.monitor() as m:
            self.ready.set()
            for cmd in m.listen():
                self.commands.append(str(cmd.get("command", "")))
                if self.stopping.is_set():
                    return

    def stop(self) -> None:
        self.stopping.set()
        self.client.set("secrets-scan-monitor-stop", "1")  # wakes the listener
        self.join(10)


class Scan:
    """Everything looked at, by source, and every needle found in it."""

    def __init__(self, needles: dict[str, str], controls: list[str]) -> None:
        self.needles = {name: value.encode() for name, value in needles.items()}
        self.controls = [c.encode() for c in controls]
        self.items: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.found: list[str] = []
        self.seen: dict[str, set[str]] = {}  # source → controls found in it
        self.decoded = 0  # base64 tokens decoded and searched too

    def look(self, source: str, what: str, data: bytes | str) -> None:
        raw = data.encode(errors="replace") if isinstance(data, str) else data
        self.items[source] = self.items.get(source, 0) + 1
        self.bytes[source] = self.bytes.get(source, 0) + len(raw)
        # Celery message bodies (and anything else) may be base64: search them decoded too
        for token in _BASE64.findall(raw):
            try:
                decoded = base64.b64decode(token + b"=" * (-len(token) % 4))
            except (binascii.Error, ValueError):
                continue
            self.decoded += 1
            raw += b"\n" + decoded
        for name, needle in self.needles.items():
            if needle in raw:
                self.found.append(f"{source}: {what} holds the {name}")
        self.seen.setdefault(source, set()).update(
            c.decode() for c in self.controls if c in raw)


def test_no_passphrase_or_credential_appears_anywhere_after_a_full_scenario(
        fleet: Fleet, flower: str, s3_server: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    needles = {
        "repository passphrase": f"scan passphrase one {tag}",
        "added passphrase": f"scan passphrase two {tag}",
        "S3 access key id": f"AKIASCAN{tag[:12].upper()}",
        "S3 secret key": f"scan-secret-access-key-{tag}",
        "fleet repository passphrase": fleet.env["VOLKEEPER_REPOSITORY_PASSWORD"],
        "fleet secret key": fleet.env["VOLKEEPER_SECRET_KEY"],
        "hook label password": f"hookpw{tag[:16]}",
        "volume label password": f"volpw{tag[:16]}",
    }
    responses: list[tuple[str, bytes]] = []
    monitor = Monitor(fleet.env["VOLKEEPER_REDIS_URL"])
    monitor.start()
    assert monitor.ready.wait(10)

    def call(method: str, path: str, **kw: Any) -> httpx.Response:
        with fleet.http as c:
            r = c.request(method, path, **kw)
        responses.append((f"{method} {path}", r.content))
        return r

    def wait(job_id: str) -> dict[str, Any]:
        job = fleet.wait_job(job_id)
        call("GET", f"/jobs/{job_id}")
        return job

    keyfile = tmp_path / "scan.key"
    keyfile.write_text(needles["repository passphrase"] + "\n")
    bucket = f"scan-{tag[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    r = call("POST", "/targets", json={
        "name": "scan", "url": f"s3://{bucket}/vk",
        "options": {"endpoint_url": s3_server.endpoint_url, "path_style": True,
                    "region": s3_server.region, "password_file": str(keyfile)},
        "credentials": {"access_key_id": needles["S3 access key id"],
                        "secret_access_key": needles["S3 secret key"]}})
    assert r.status_code == 201, r.text

    docker_a = fleet.docker["host-a"].client()
    docker_a.volumes.create("scan-vol", labels={
        "backup.db-password": needles["volume label password"]})
    (mountpoint(fleet, "host-a", "scan-vol") / "data.txt").write_text("scan data\n" * 1000)
    # a container using it whose pre-backup hook spells out a password (the hook runs
    # with it; the inventory, the job's result and the logs keep it redacted)
    app = f"scan-app-{tag[:8]}"
    docker_a.containers.run(
        busybox_image(fleet.docker["host-a"]), ["sleep", "600"], name=app, detach=True,
        volumes={"scan-vol": {"bind": "/data", "mode": "rw"}}, labels={
            "volkeeper.pre-backup": f"MYSQL_PWD={needles['hook label password']} sh -c "
                                    "'echo hook-ran > /data/hook.txt'"})
    fleet.wait_volume("host-a", "scan-vol")
    call("POST", "/hosts/host-a/refresh")
    wait_for(lambda: app in call("GET", "/volumes").text, 30,
             "the labelled container in the inventory", interval=0.3)
    r = call("POST", "/backups", json={"volume": "scan-vol", "host": "host-a",
                                       "target": "scan", "format": "repo"})
    assert r.status_code == 202, r.text
    backup = wait(r.json()["id"])
    assert backup["state"] == "succeeded", backup["error"]
    bid = backup["backup_id"]

    r = call("POST", "/targets/scan/keys", json={"new_password": needles["added passphrase"]})
    assert r.status_code == 202, r.text
    added = wait(r.json()["id"])
    assert added["state"] == "succeeded", added["error"]

    r = call("POST", f"/backups/{bid}/verify", json={"read_data": True})
    assert r.status_code == 202, r.text
    verified = wait(r.json()["id"])
    assert verified["state"] == "succeeded", verified["error"]

    r = call("POST", "/restores", json={"backup_id": bid, "into": "scan-restored"})
    assert r.status_code == 202, r.text
    restored = wait(r.json()["id"])
    assert restored["state"] == "succeeded", restored["error"]
    assert (mountpoint(fleet, "host-a", "scan-restored") / "data.txt").read_text() \
        == "scan data\n" * 1000
    # the hook ran with its real command before the backup
    assert (mountpoint(fleet, "host-a", "scan-restored") / "hook.txt").read_text() \
        == "hook-ran\n"
    docker_a.containers.get(app).remove(force=True)

    for path in ("/hosts", "/volumes", "/targets", "/targets/scan", "/backups",
                 f"/backups/{bid}", "/jobs", "/drills", "/whoami", "/tokens", "/audit"):
        call("GET", path)
    # controls: names the scenario used, not secrets — the scan must find them where they
    # belong, so it is known to look at the right bytes
    jobs = [backup["id"], added["id"], verified["id"], restored["id"]]
    scan = Scan(needles, [bucket, bid, "scan-vol", "sealed_secrets", app, *jobs])
    for what, body in responses:
        scan.look("API responses", what, body)

    monitor.stop()
    for command in monitor.commands:
        scan.look("Redis commands", "a command", command)

    for log in sorted(fleet.root.glob("*.log")):
        scan.look("log files", log.name, log.read_bytes())

    engine = sa.create_engine(fleet.env["VOLKEEPER_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT t::text FROM "{table}" t')):
                    scan.look("PostgreSQL rows", table, row[0])
    finally:
        engine.dispose()

    r_url = fleet.env["VOLKEEPER_REDIS_URL"]
    client: Any = redis.Redis.from_url(r_url)
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        values: list[bytes] = []
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "list":
            values = list(client.lrange(key, 0, -1))  # queued messages too
        elif kind == "hash":
            values = [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = list(client.zrange(key, 0, -1))
        scan.look("Redis keys", key.decode(errors="replace"), key + b"\n" + b"\n".join(values))

    def flower_tasks() -> dict[str, Any]:
        got: dict[str, Any] = httpx.get(flower + "/api/tasks", timeout=20).json()
        return got
    pages = ["/", "/tasks", "/workers", "/broker", "/api/tasks", "/api/workers?refresh=1"]
    try:
        wait_for(lambda: bool(flower_tasks()), 20, "flower seeing the scenario's tasks",
                 interval=1)
        pages += [f"/task/{task_id}" for task_id in flower_tasks()]
    except AssertionError:
        pass  # workers that send no task events: the task pages stay empty
    for page in pages:
        r = httpx.get(flower + page, timeout=20)
        scan.look("Flower pages", page, r.content)

    figure = {src: {"items": scan.items[src], "bytes": scan.bytes[src]} for src in scan.items}
    print("secrets scan:", json.dumps(figure, sort_keys=True), "base64 decoded:", scan.decoded)
    print("controls seen:", {src: sorted(seen) for src, seen in scan.seen.items()})
    assert scan.found == []
    for source, seen in scan.seen.items():
        assert set(jobs) <= seen, (source, seen)
    # the key job's message was seen, its body decoded: the passphrase travelled sealed
    assert "sealed_secrets" in scan.seen["Redis commands"]
    # the labelled container's inventory row and its backup's hook result were searched
    assert app in scan.seen["PostgreSQL rows"] and app in scan.seen["API responses"]
    assert scan.items["Flower pages"] >= 6 and scan.items["log files"] >= 3
    assert scan.items["PostgreSQL rows"] > 5 and scan.items["Redis keys"] > 0
