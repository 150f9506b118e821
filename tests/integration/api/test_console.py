"""The web console in a real browser (Debian's chromium driven by Playwright) against the
embedded server: it lists hosts, volumes, backups and jobs from the live API."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.auth import login_url
from tests.fixtures.embedded import api_client, api_token
from tests.fixtures.util import unavailable, wait_for

pytestmark = pytest.mark.integration
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if executable is None:
        unavailable("no chromium binary (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def test_the_console_shows_volumes_then_a_new_backup_and_its_job(
        browser: Any, embedded_server: str, embedded_env: dict[str, str],
        docker_host_a: Any) -> None:
    docker_host_a.client().volumes.create("console-vol")
    mountpoint = Path(docker_host_a.client().volumes.get("console-vol").attrs["Mountpoint"])
    (mountpoint / "hello.txt").write_text("hello")
    api = api_client(embedded_server, embedded_env)
    wait_for(lambda: any(v["name"] == "console-vol" for v in api.get("/volumes").json()), 30,
             "the volume in the inventory")

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(embedded_server + "/")  # not logged in: the login page
    page.wait_for_selector("text=Log in", timeout=15_000)
    page.goto(login_url(embedded_server, api_token(embedded_env)))  # the link serve prints
    page.wait_for_url(embedded_server + "/", timeout=15_000)
    assert "token=" not in page.url
    page.wait_for_selector("#volumes td:text-is('console-vol')", timeout=15_000)
    assert "online" in page.inner_text("#hosts") and "laptop" in page.inner_text("#hosts")
    assert "none" in page.inner_text("#backups")

    job = api.post("/backups", json={"volume": "console-vol"}).json()
    deadline = time.monotonic() + 60
    while (job := api.get(f"/jobs/{job['id']}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["state"] == "succeeded", job["error"]

    page.click("text=Load")
    page.wait_for_selector(f"#backups td:text-is('{job['backup_id']}')", timeout=15_000)
    jobs_text = page.inner_text("#jobs")
    assert job["id"] in jobs_text and "succeeded" in jobs_text and "backup" in jobs_text
    assert "laptop/console-vol" in page.inner_text("#backups")
    assert "admin (admin)" in page.inner_text("#who")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["volkeeper_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert errors == []
    page.close()
