"""The migration wizard in a real browser, on the server and chromium the console tests
share (``conftest.py``): started from a volume's page, a taken destination name fails its
check with the hint, then a small volume moves to a new name on the same host through
validation, plan and the live phases to its report; the destination holds the source's
content, the Markdown report is served, the migrations list shows it, and its rollback
removes the destination again; an operator is not offered the rollback (admins), a viewer
not the wizard."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.fixtures.console import Console, close, open_console, shot, wizard_heading
from tests.fixtures.util import wait_for
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration


def test_the_wizard_migrates_a_volume_to_a_new_name_and_reports_it(
        browser: Any, console: Console) -> None:
    name, src = console.volume("vkc-mig")
    (src / "conf").mkdir()
    (src / "conf" / "app.ini").write_text("[app]\nport = 8080\n")
    (src / "data.bin").write_bytes(os.urandom(200_000))
    (src / "latest").symlink_to("conf/app.ini")
    os.chmod(src / "conf" / "app.ini", 0o640)
    taken, _ = console.volume("vkc-taken")
    job = console.job("/backups", {"volume": name})  # a backup to time: the estimate
    assert job["state"] == "succeeded", job["error"]

    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/volumes/laptop/{name}")
    page.click("role=link[name='Migrate…']")
    wizard_heading(page, f"Where should laptop/{name} go?")
    page.fill("input[name=to-volume]", taken)
    page.click("role=button[name='Check']")
    wizard_heading(page, "Some checks failed")
    failed = page.inner_text(".checks li.bad[data-check='destination volume']")
    assert "already exists" in failed and "What to do:" in failed, failed
    assert page.locator("role=button[name='Continue']").count() == 0
    shot(page, "migrate-checks")

    page.click("role=button[name='Back']")
    dest = f"{name}-moved"
    console.volumes.append(dest)
    page.fill("input[name=to-volume]", dest)
    page.click("role=button[name='Check']")
    wizard_heading(page, "All checks passed")
    page.click("role=button[name='Continue']")
    wizard_heading(page, "The plan")
    assert page.get_attribute("[data-estimate]", "data-estimate") == "known"
    assert "downtime" in page.inner_text("[data-estimate]")
    shot(page, "migrate-plan")
    page.click("role=button[name='Start migration']")
    wizard_heading(page, "Migrated")
    report = page.locator("[data-report]")
    mid = report.get_attribute("data-report")
    assert page.inner_text("[data-fact='verify']") == "passed"
    assert page.get_attribute("tr[data-phase='verify']", "data-state") == "succeeded"
    # no container used the source: no catch-up round, and the report says why
    assert "no running container" in page.inner_text("[data-fact='catch-up']")
    assert page.locator("tr[data-phase='catch-up']").count() == 0
    shot(page, "migrate-report")
    assert compare_trees(src, console.mountpoint(dest)) == []

    md = page.request.get(console.url + page.get_attribute(
        "role=link[name='Report as Markdown']", "href"))
    assert md.ok and md.text().startswith(f"# Migration {mid}: succeeded"), md.text()

    page.goto(f"{console.url}/#/migrations")
    row = f"[data-migration='{mid}'][data-state='succeeded']"
    page.wait_for_selector(row)
    assert f"laptop/{name} → laptop/{dest}" in page.inner_text(row)
    shot(page, "migrations")

    _roles_see_what_they_may_do(browser, console, mid, name)

    page.click(f"{row} >> role=link[name='{mid}']")
    page.click("role=button[name='Roll back migration']")
    # confirmed first (it removes the destination, and what was written to it)
    assert f"laptop/{dest} is removed" in page.inner_text("dialog[open]")
    page.click("dialog[open] >> role=button[name='Roll back']")
    page.wait_for_selector(".migration-live[data-state='rolled_back']")
    client = console.docker.client()
    wait_for(lambda: dest not in {v.name for v in client.volumes.list()}, 30,
             "the destination removed by the rollback")
    assert (src / "conf" / "app.ini").read_text() == "[app]\nport = 8080\n"
    close(page, errors)


def _roles_see_what_they_may_do(browser: Any, console: Console, mid: str, name: str) -> None:
    """An operator may migrate but not roll back (admins); a viewer may do neither."""
    with console.api() as api:
        tokens = {role: api.post("/tokens", json={"name": f"mig-{role}", "role": role})
                  for role in ("operator", "viewer")}
    for role, resp in tokens.items():
        assert resp.status_code == 201, resp.text
        page, errors = open_console(browser, console, token=resp.json()["secret"])
        page.goto(f"{console.url}/#/migrations/{mid}")
        page.wait_for_selector(f"[data-report='{mid}']")
        assert page.locator("role=button[name='Roll back migration']").count() == 0
        page.goto(f"{console.url}/#/volumes/laptop/{name}")
        page.wait_for_selector("#vjobs-h")
        page.wait_for_selector("main[data-ready='volume']")
        assert page.locator("text=Migrate…").count() == (1 if role == "operator" else 0)
        close(page, errors)


def test_the_wizards_destination_step_fits_a_phone(browser: Any, console: Console) -> None:
    """The cut-over select's long option once made the form wider than the screen."""
    name, _ = console.volume("vkc-migphone")
    page, errors = open_console(browser, console, viewport={"width": 375, "height": 812})
    page.goto(f"{console.url}/#/migrate?host=laptop&volume={name}")
    wizard_heading(page, f"Where should laptop/{name} go?")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    right = page.evaluate("document.querySelector('select[name=cutover]')"
                          ".getBoundingClientRect().right")
    assert right <= 375, right
    close(page, errors)
