"""Notifications reach real receivers: a ``volkeeper backup`` that fails (its target is
unreachable) sends one signed webhook, one e-mail through a real SMTP server process
(aiosmtpd) and one Apprise ``json://`` post; a second failure sends nothing more; the next
good backup sends "recovered" on every channel. A receiver that is down fails no job."""

from __future__ import annotations

import hashlib
import hmac
import json
import mailbox
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.util import free_port, wait_for
from tests.integration.embedded.test_embedded import cli, volume

pytestmark = pytest.mark.integration

SECRET = "webhook-signing-secret"


class Receiver:
    """An HTTP server on loopback that keeps every POST (path, headers, raw body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for p, h, b in self.posts if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A real SMTP server process (aiosmtpd) storing mail in a Maildir."""
    pytest.importorskip("aiosmtpd")
    port, maildir = free_port(), tmp_path / "maildir"
    p = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                          "-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import socket

        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() is None,
                 30, "aiosmtpd")
        yield port, maildir
    finally:
        p.terminate()
        p.wait(10)


def mails(maildir: Path) -> list[Any]:
    if not maildir.exists():
        return []
    return list(mailbox.Maildir(str(maildir), create=False))


def test_a_failure_and_its_recovery_reach_webhook_email_and_apprise_once_each(
        embedded_env: dict[str, str], docker_host_a: Any, receiver: Receiver,
        smtp_server: tuple[int, Path]) -> None:
    apprise = pytest.importorskip("apprise")
    assert apprise
    smtp_port, maildir = smtp_server
    env = embedded_env | {
        "VOLKEEPER_NOTIFY_URLS": f"http://127.0.0.1:{receiver.port}/hook "
                                 f"json://127.0.0.1:{receiver.port}/apprise",
        "VOLKEEPER_NOTIFY_WEBHOOK_SECRET": SECRET,
        "VOLKEEPER_NOTIFY_SMTP_HOST": "127.0.0.1",
        "VOLKEEPER_NOTIFY_SMTP_PORT": str(smtp_port),
        "VOLKEEPER_NOTIFY_SMTP_SECURITY": "none",
        "VOLKEEPER_NOTIFY_SMTP_TO": "ops@example.com",
        "VOLKEEPER_NOTIFY_MIN_INTERVAL_SECONDS": "0",
        "VOLKEEPER_STORAGE_RETRIES": "1",
    }
    (volume(docker_host_a, "nt-data") / "f.txt").write_text("data")
    cli(env, "targets", "add", "dead", "s3://nowhere/x", "--endpoint-url",
        f"http://127.0.0.1:{free_port()}", "--path-style", "--access-key-id", "AK",
        "--secret-access-key", "SK")

    for _ in range(2):  # the second failure is no news
        failed = cli(env, "backup", "nt-data", "--target", "dead", "--json", ok=False)
        assert json.loads(failed.stdout)["state"] == "failed"
    hooks = receiver.at("/hook")
    assert len(hooks) == 1, hooks
    headers, body = hooks[0]
    assert headers["X-Volkeeper-Signature"] == "sha256=" + hmac.new(
        SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Volkeeper-Event"] == "failed"
    msg = json.loads(body)
    assert (msg["event"], msg["kind"], msg["subject"]) == ("failed", "backup", "laptop/nt-data")
    assert "'dead'" in msg["details"]["error"]
    assert len(receiver.at("/apprise")) == 1
    assert "backup of laptop/nt-data failed" in receiver.at("/apprise")[0][1].decode()
    got = mails(maildir)
    assert len(got) == 1 and "backup of laptop/nt-data failed" in got[0]["Subject"]
    assert got[0]["To"] == "ops@example.com"

    ok = json.loads(cli(env, "backup", "nt-data", "--json").stdout)
    assert ok["state"] == "succeeded"
    assert [json.loads(b)["event"] for _, b in receiver.at("/hook")] == ["failed", "recovered"]
    assert len(receiver.at("/apprise")) == 2
    assert [m["X-Volkeeper-Event"] for m in mails(maildir)].count("recovered") == 1


def test_a_receiver_that_is_down_fails_no_job(embedded_env: dict[str, str],
                                              docker_host_a: Any) -> None:
    env = embedded_env | {"VOLKEEPER_NOTIFY_URLS": f"http://127.0.0.1:{free_port()}/hook",
                          "VOLKEEPER_NOTIFY_MIN_INTERVAL_SECONDS": "0",
                          "VOLKEEPER_STORAGE_RETRIES": "1"}
    (volume(docker_host_a, "nt-ok") / "f.txt").write_text("data")
    cli(env, "targets", "add", "dead", "s3://nowhere/x", "--endpoint-url",
        f"http://127.0.0.1:{free_port()}", "--path-style", "--access-key-id", "AK",
        "--secret-access-key", "SK")
    failed = cli(env, "backup", "nt-ok", "--target", "dead", "--json", ok=False)
    assert json.loads(failed.stdout)["state"] == "failed"
    assert "could not deliver" in failed.stderr  # the failure message was attempted
    ok = cli(env, "backup", "nt-ok", "--json")  # so is the recovery: the job still succeeds
    assert json.loads(ok.stdout)["state"] == "succeeded"
    assert "could not deliver" in ok.stderr and "ConnectError" in ok.stderr


def test_a_failed_verification_and_a_failed_drill_are_told(
        embedded_env: dict[str, str], docker_host_a: Any, receiver: Receiver) -> None:
    env = embedded_env | {"VOLKEEPER_NOTIFY_URLS": f"http://127.0.0.1:{receiver.port}/hook",
                          "VOLKEEPER_NOTIFY_MIN_INTERVAL_SECONDS": "0"}
    (volume(docker_host_a, "nt-verify") / "f.bin").write_bytes(b"0123456789" * 50_000)
    job = json.loads(cli(env, "backup", "nt-verify", "--format", "tar", "--json").stdout)
    archive = Path(env["VOLKEEPER_HOME"]) / "backups" / job["result"]["key"]
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    archive.write_bytes(bytes(raw))
    assert cli(env, "verify", job["backup_id"], ok=False).returncode == 1
    assert cli(env, "drill", job["backup_id"], ok=False).returncode == 1
    events = [json.loads(b) for _, b in receiver.at("/hook")]
    assert [(e["event"], e["kind"], e["subject"]) for e in events] == [
        ("failed", "verify", "laptop/nt-verify"), ("failed", "drill", "laptop/nt-verify")]
    assert events[0]["summary"].startswith("verification of laptop/nt-verify failed")
    assert events[1]["details"]["backup_id"] == job["backup_id"]
