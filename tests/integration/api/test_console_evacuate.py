"""Evacuations in the console, on the server and chromium the console tests share
(``conftest.py``). The embedded server has one host, so it cannot run an evacuation (the
fleet's tests move volumes host to host); here a second host that has gone offline is
registered: the hosts page offers an operator "Evacuate…", the dry run lists every volume
of the host with its failed check and the hint, and no Start is offered; an evacuation
recorded earlier (two migrations, one failed) is listed, shown with its migrations and
its Markdown report; a viewer sees the evacuations but is not offered one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from common.config import Settings
from common.db import Database, Host, Migration, hosts
from common.db.models import utcnow
from tests.fixtures.console import Console, close, open_console, shot

pytestmark = pytest.mark.integration
SPARE = "spare"


def _migration(mid: str, volume: str, batch: str, state: str) -> Migration:
    at = utcnow() - timedelta(hours=2)
    return Migration(id=mid, state=state, source_host=SPARE, source_volume=volume,
                     dest_host="laptop", dest_volume=volume, driver="local", driver_opts={},
                     via="local", cutover="stop", remove_source=False, steps={}, phases=[],
                     batch=batch, report={}, created_at=at, started_at=at, finished_at=at,
                     requested_by="admin", verify_outcome="passed" if state == "succeeded"
                     else None, downtime_seconds=1.25 if state == "succeeded" else None,
                     reason=None if state == "succeeded" else
                     "the pre-copy failed: host 'spare' stopped answering — bring it back")


@pytest.fixture
def history(console: Console) -> Iterator[tuple[str, list[str]]]:
    """An offline second host and an evacuation of it recorded while it was online."""
    db = Database(Settings(home=Path(console.env["VOLKEEPER_HOME"])).effective_database_url)
    batch = uuid.uuid4().hex[:16]
    mids = [uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]]
    with db.session() as s:
        hosts.register_host(s, SPARE, docker_version="28.2", worker_version="test")
    with db.session() as s:
        s.get(Host, SPARE).last_seen_at = utcnow() - timedelta(days=1)  # type: ignore[union-attr]
        s.add_all([_migration(mids[0], "web-data", batch, "succeeded"),
                   _migration(mids[1], "db-data", batch, "failed")])
    try:
        yield batch, mids
    finally:  # the other console tests see one host and no evacuation
        with db.session() as s:
            s.execute(delete(Migration).where(Migration.batch == batch))
            s.execute(delete(Host).where(Host.name == SPARE))
        db.dispose()


def test_an_evacuation_is_checked_listed_and_shown(
        browser: Any, console: Console, history: tuple[str, list[str]]) -> None:
    batch, (done, failed) = history
    name, _ = console.volume("vkc-evac")
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/hosts")
    page.click("role=link[name='Evacuate laptop']")
    page.wait_for_selector("#main[data-ready='evacuate']")
    page.select_option("select[name=to-host]", SPARE)
    page.click("role=button[name='Check']")
    page.wait_for_selector("#evac-checks-h:text-is('Some checks failed')")
    mine = f"li[data-volume='{name}']"
    bad = page.inner_text(f"{mine} .checks li.bad[data-check='destination host']")
    assert SPARE in bad and "What to do:" in bad, bad
    assert page.locator("role=button[name='Start evacuation']").count() == 0
    shot(page, "evacuate-checks")

    page.goto(f"{console.url}/#/evacuations")
    row = f"[data-evacuation='{batch}'][data-state='failed']"
    page.wait_for_selector(row)
    text = page.inner_text(row)
    assert f"{SPARE} → laptop" in text and "1 failed, 1 succeeded" in text, text
    page.click(f"{row} >> role=link[name='{batch}']")
    page.wait_for_selector(f"tr[data-migration='{done}'][data-state='succeeded']")
    assert "bring it back" in page.inner_text(f"tr[data-migration='{failed}']")
    assert page.inner_text("[data-fact='volumes']").startswith("2: ")
    md = page.request.get(console.url + page.get_attribute(
        "role=link[name='Report as Markdown']", "href"))
    assert md.ok and md.text().startswith(f"# Evacuation {batch}: failed"), md.text()
    page.click(f"role=link[name='{done}']")  # each migration has its own page
    page.wait_for_selector("#main[data-ready='migration']")
    close(page, errors)

    with console.api() as api:
        secret = api.post("/tokens", json={"name": f"evac-{batch[:6]}", "role": "viewer"}
                          ).json()["secret"]
    page, errors = open_console(browser, console, token=secret)
    # the item is shown once the console has asked which features the server has
    page.wait_for_selector("#nav a[data-feature='evacuations']", state="visible")
    assert "Evacuations" in page.inner_text("#nav")
    page.goto(f"{console.url}/#/hosts")
    page.wait_for_selector("main td:text-is('spare')")
    assert page.locator("text=Evacuate…").count() == 0
    page.goto(f"{console.url}/#/evacuations")
    page.wait_for_selector(f"[data-evacuation='{batch}']")
    assert page.locator("text=Evacuate a host…").count() == 0
    close(page, errors)
