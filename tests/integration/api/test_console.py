"""The web console in a real browser (Debian's chromium driven by Playwright) against one
embedded ``volkeeper serve`` with real volumes, shared by the module's tests: the login,
the restore wizard (into a new volume, compared; a replace and its rollback), Back up now
with its bar reaching 100 %, a failed job showing its hint, and a viewer who is not
offered changes.

With ``VOLKEEPER_CONSOLE_SCREENSHOTS=DIR`` the tests also save screenshots of the main
pages there (``docs/console/`` holds the ones the README shows)."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from tests.fixtures.console import (
    DESKTOP,
    PHONE,
    Console,
    close,
    open_console,
    shot,
    wizard_heading,
)
from tests.fixtures.util import wait_for
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration


def test_login_trades_the_link_for_a_session_cookie(browser: Any, console: Console) -> None:
    page = browser.new_page()
    failed: list[str] = []  # no request of the login page or the console fails (a favicon)
    page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
    page.goto(console.url + "/")  # not logged in: the login page
    page.wait_for_selector("text=Log in", timeout=15_000)
    page.wait_for_timeout(300)
    page.close()
    page, errors = open_console(browser, console)
    page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
    assert "token=" not in page.url
    assert page.inner_text("#who") == "admin (admin)"
    session = {c["name"]: c for c in page.context.cookies()}["volkeeper_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    page.wait_for_selector(".card .value")  # the overview drew
    page.reload()
    page.wait_for_selector(".card .value")
    page.wait_for_timeout(300)
    assert failed == []
    close(page, errors)


def test_skip_to_content_stays_on_the_page(browser: Any, console: Console) -> None:
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/backups")
    page.wait_for_selector("main[data-ready='backups']")
    page.focus("a.skip")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert page.evaluate("location.hash") == "#/backups"
    assert page.inner_text("main h1") == "Backups"
    assert page.evaluate("document.activeElement.id") == "main"
    close(page, errors)


def test_the_wizard_restores_a_version_into_a_new_volume(browser: Any, console: Console
                                                         ) -> None:
    name, src = console.volume("vkc-app")
    build_fidelity_tree(src)
    job = console.job("/backups", {"volume": name})
    assert job["state"] == "succeeded", job["error"]
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/volumes/laptop/{name}")
    page.click("role=link[name='Restore…']")
    wizard_heading(page, f"Which version of laptop/{name}?")
    assert page.is_checked(f"input[name=version][value='{job['backup_id']}']")
    shot(page, "restore-version")
    page.click("role=button[name='Next']")
    wizard_heading(page, "Where to?")
    into = f"{name}-copy"
    console.volumes.append(into)
    page.fill("input[name=into]", into)
    assert page.is_checked("input[name=where][value=new]")  # the default
    page.click("role=button[name='Next']")
    wizard_heading(page, "What to restore?")
    assert page.is_checked("input[name=what][value=whole]")  # the default
    page.click("role=button[name='Check']")
    wizard_heading(page, "All checks passed")
    checks = page.inner_text(".checks")
    assert "target volume" in checks and "does not exist; it will be created" in checks
    shot(page, "restore-checks")
    page.click("role=button[name='Continue']")
    wizard_heading(page, "Confirm")
    assert f"into a new volume {into} on laptop" in page.inner_text(".facts")
    page.click("role=button[name='Start restore']")
    wizard_heading(page, "Restored")
    assert page.eval_on_selector(".wizard progress", "p => p.value") == 100
    shot(page, "restore-done")
    assert compare_trees(src, console.mountpoint(into)) == []
    close(page, errors)


def test_the_restore_wizard_refuses_a_bad_name_and_fits_a_phone(browser: Any, console: Console
                                                                ) -> None:
    name, src = console.volume("vkc-phone")
    (src / "a.txt").write_text("phone")
    job = console.job("/backups", {"volume": name})  # repo: its check names a long key
    assert job["state"] == "succeeded", job["error"]
    page, errors = open_console(browser, console, viewport={"width": 375, "height": 812})
    logged: list[str] = []
    page.on("console", lambda m: logged.append(m.text) if m.type == "error" else None)
    page.goto(f"{console.url}/#/restore?host=laptop&volume={name}")
    wizard_heading(page, f"Which version of laptop/{name}?")
    page.click("role=button[name='Next']")
    wizard_heading(page, "Where to?")
    page.fill("input[name=into]", "not a name")
    page.click("role=button[name='Next']")  # the browser refuses it (the field's pattern)
    assert page.eval_on_selector("input[name=into]", "e => e.validity.patternMismatch")
    wizard_heading(page, "Where to?")
    console.volumes.append(f"{name}-ok")
    page.fill("input[name=into]", f"{name}-ok")
    page.click("role=button[name='Next']")
    wizard_heading(page, "What to restore?")
    page.click("role=button[name='Check']")
    wizard_heading(page, "All checks passed")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.click("role=button[name='Continue']")
    wizard_heading(page, "Confirm")
    facts = page.inner_text(".facts")
    assert "5 B, 1 file" in facts and "1 files" not in facts
    assert logged == []  # an invalid pattern is a console error (and no check at all)
    close(page, errors)


def test_a_replace_is_confirmed_then_rolled_back(browser: Any, console: Console) -> None:
    name, path = console.volume("vkc-db")
    (path / "data.txt").write_text("version one")
    job = console.job("/backups", {"volume": name, "format": "tar.gz"})
    assert job["state"] == "succeeded", job["error"]
    (path / "data.txt").write_text("version two")
    (path / "new.txt").write_text("only after the backup")

    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/restore")
    wizard_heading(page, "Which volume?")
    page.select_option("select[name=volume]", f"laptop/{name}")
    page.click("role=button[name='Next']")
    wizard_heading(page, f"Which version of laptop/{name}?")
    page.click("role=button[name='Next']")
    page.check("input[name=where][value=replace]")
    page.click("role=button[name='Next']")  # a replace restores the whole volume
    wizard_heading(page, "All checks passed")
    page.click("role=button[name='Continue']")
    wizard_heading(page, "Confirm")
    page.check("input[name=ack]")
    page.click("role=button[name='Replace now']")
    wizard_heading(page, "Restored")
    assert (path / "data.txt").read_text() == "version one"
    assert not (path / "new.txt").exists()

    page.click("role=button[name='Roll back']")
    # confirmed first: it threw away what was written since the restore at one click
    assert "is lost" in page.inner_text("dialog[open]")
    page.click("dialog[open] >> role=button[name='Keep it']")
    assert (path / "data.txt").read_text() == "version one"
    page.click("role=button[name='Roll back']")
    page.click("dialog[open] >> role=button[name='Roll back']")
    page.wait_for_selector("text=Rolled back: the volume holds its content")
    assert (path / "data.txt").read_text() == "version two"
    assert (path / "new.txt").read_text() == "only after the backup"
    close(page, errors)


def test_back_up_now_shows_a_live_bar_reaching_100_percent(browser: Any, console: Console
                                                          ) -> None:
    name, path = console.volume("vkc-media")
    for i in range(8):
        (path / f"blob{i}").write_bytes(os.urandom(2 << 20))
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/volumes")
    page.fill("input[name=q]", name)
    page.click(f"role=link[name='Back up {name}']")
    page.wait_for_selector("#backup-now-h")
    page.select_option("select[name=format]", "tar.gz")
    page.evaluate("""() => {  // every percentage the bar shows
        window.seen = [];
        const pct = document.querySelector('.panel .pct');
        new MutationObserver(() => window.seen.push(pct.textContent))
            .observe(pct, {childList: true, characterData: true, subtree: true});
    }""")
    page.click("role=button[name='Back up now']")
    page.wait_for_selector(".panel .badge:text-is('succeeded')")
    assert page.eval_on_selector(".panel progress", "p => p.value") == 100
    seen = page.evaluate("window.seen")
    assert seen and seen[-1] == "100 %", seen
    assert any(p and p != "100 %" for p in seen), seen  # it moved on the way
    shot(page, "volume")
    page.wait_for_selector("[data-backup] td:text-is('tar.gz')")  # in the timeline
    close(page, errors)


def test_the_overview_follows_a_running_job_to_its_end(browser: Any, console: Console
                                                       ) -> None:
    name, path = console.volume("vkc-big")
    # 80 MiB at the fixture's 8 MiB/s: ~10 s, so the job still runs when the overview
    # reads the running jobs, even on a loaded machine (at 24 MiB a CI run missed it)
    for i in range(40):
        (path / f"blob{i}").write_bytes(os.urandom(2 << 20))
    page, errors = open_console(browser, console)
    page.wait_for_selector(".card .value")
    with console.api() as api:
        job = api.post("/backups", json={"volume": name, "format": "tar"}).json()
    page.goto(f"{console.url}/#/volumes")
    page.goto(f"{console.url}/#/")  # drawn again at once: the job is queued or running
    row = f".live-jobs li[data-job='{job['id']}']"
    page.wait_for_selector(row)
    shot(page, "overview-running")
    page.wait_for_selector(f"{row} .phase:has-text('succeeded')")
    assert page.eval_on_selector(f"{row} progress", "p => p.value") == 100
    close(page, errors)


def test_a_running_job_is_cancelled_from_its_page(browser: Any, console: Console) -> None:
    name, path = console.volume("vkc-stop")
    for i in range(48):  # ~12 s at 8 MiB/s; cancelled long before it ends
        (path / f"blob{i}").write_bytes(os.urandom(2 << 20))
    page, errors = open_console(browser, console)
    with console.api() as api:
        job = api.post("/backups", json={"volume": name, "format": "tar"}).json()
    page.goto(f"{console.url}/#/jobs/{job['id']}")
    cancel = f"role=button[name='Cancel job {job['id']}']"
    page.click(cancel)
    page.click("dialog[open] >> role=button[name='Keep it']")  # asked first: nothing sent
    assert page.locator("dialog[open]").count() == 0
    with console.api() as api:
        assert api.get(f"/jobs/{job['id']}").json()["state"] in ("queued", "running")
    page.click(cancel)
    page.click("dialog[open] >> role=button[name='Cancel job']")
    page.wait_for_selector("main .badge:text-is('cancelled')")
    assert page.locator(cancel).count() == 0
    with console.api() as api:
        assert api.get(f"/jobs/{job['id']}").json()["state"] == "cancelled"
        assert not api.get("/backups", params={"volume": name}).json()
    close(page, errors)


def test_backups_are_tagged_pinned_and_forgotten_with_the_loss_named(
        browser: Any, console: Console) -> None:
    name, path = console.volume("vkc-keep")
    (path / "notes.txt").write_text("keep me")
    job = console.job("/backups", {"volume": name, "format": "tar"})
    backup = job["backup_id"]
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/backups")
    page.fill("input[name=volume]", name)
    page.click("role=button[name='Filter']")
    row = f"[data-backup='{backup}']"
    # size is the volume data (as `volkeeper backups`), stored the archive on the target
    assert page.inner_text(f"{row} td:nth-child(6)") == "7 B"
    assert page.inner_text(f"{row} td:nth-child(7)") not in ("", "7 B")
    page.click(f"{row} >> role=button[name='Tags of backup {backup}']")
    page.fill("dialog input[name=add]", "before-upgrade, keep")
    page.press("dialog input[name=add]", "Enter")  # Enter saves (Cancel is not the default)
    page.wait_for_selector(f"{row} .tag:text-is('before-upgrade')")
    page.click(f"{row} >> role=button[name='Pin backup {backup}']")
    page.wait_for_selector(f"{row} .tag:text-is('pinned')")
    # a pinned backup cannot be forgotten: not offered
    assert page.locator(f"{row} >> role=button[name='Forget backup {backup}']").count() == 0
    page.click(f"{row} >> role=button[name='Unpin backup {backup}']")
    page.wait_for_selector(f"{row} >> role=button[name='Forget backup {backup}']")
    page.click(f"{row} >> role=button[name='Forget backup {backup}']")
    lost = page.inner_text("dialog .lost")
    assert f"laptop/{name}" in lost and "1 file," in lost
    shot(page, "backup-forget")
    page.click("dialog >> role=button[name='Forget backup']")
    with console.api() as api:
        wait_for(lambda: api.get(f"/backups/{backup}").status_code == 404, 30,
                 "the backup forgotten")
    page.click("role=button[name='Filter']")
    page.wait_for_selector("td:has-text('no backup matches these filters')")
    close(page, errors)


def test_a_failed_job_shows_its_error_and_hint(browser: Any, console: Console) -> None:
    name, path = console.volume("vkc-logs")
    (path / "app.log").write_text("hello")
    broken = console.root / "broken-target"
    with console.api() as api:
        resp = api.post("/targets", json={"name": "broken", "url": f"file://{broken}"})
        assert resp.status_code == 201, resp.text
    shutil.rmtree(broken, ignore_errors=True)
    broken.write_text("a file where the target's directory should be")
    job = console.job("/backups", {"volume": name, "target": "broken", "format": "tar"})
    assert job["state"] == "failed"

    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/jobs")
    page.select_option("select[name=state]", "failed")
    hint = page.inner_text(f"[data-job='{job['id']}'] .job-error .hint")  # in the list too
    assert "point the target at a directory" in hint
    page.click(f"[data-job='{job['id']}'] a:text-is('{job['id']}')")
    page.wait_for_selector(".error .hint")
    assert "not a directory" in page.inner_text(".error .error-message")
    assert "point the target at a directory" in page.inner_text(".error .hint")
    shot(page, "job-failed")
    page.goto(f"{console.url}/#/")
    page.wait_for_selector(f"section td a:text-is('{job['id']}')")  # failed, last 24 h
    close(page, errors)


def test_a_viewer_is_offered_no_changes_and_an_operator_no_admin_ones(
        browser: Any, console: Console) -> None:
    name, path = console.volume("vkc-view")
    (path / "f").write_text("x")
    job = console.job("/backups", {"volume": name, "format": "tar"})
    with console.api() as api:
        resp = api.post("/tokens", json={"name": "watcher", "role": "viewer"})
        assert resp.status_code == 201, resp.text
        secret = resp.json()["secret"]
    page, errors = open_console(browser, console, token=secret)
    assert page.inner_text("#who") == "watcher (viewer)"
    nav = page.inner_text("#nav")
    assert "Volumes" in nav and "Restore" not in nav and "Audit log" not in nav
    page.goto(f"{console.url}/#/volumes/laptop/{name}")
    page.wait_for_selector(f"[data-backup='{job['backup_id']}']")
    assert page.locator("#backup-now-h").count() == 0
    assert page.locator("text=Restore…").count() == 0
    page.goto(f"{console.url}/#/backups")
    page.wait_for_selector(f"[data-backup='{job['backup_id']}']")
    assert page.locator("main table button").count() == 0
    assert page.locator(".row-actions").count() == 0
    page.goto(f"{console.url}/#/volumes")
    page.wait_for_selector(f"td a:text-is('{name}')")
    assert page.locator("text=Back up…").count() == 0
    close(page, errors)

    # an operator backs up and restores into new volumes, but neither replaces nor forgets
    with console.api() as api:
        secret = api.post("/tokens", json={"name": "ops", "role": "operator"}).json()["secret"]
    page, errors = open_console(browser, console, token=secret)
    nav = page.inner_text("#nav")
    assert "Restore" in nav and "Audit log" not in nav
    page.goto(f"{console.url}/#/backups")
    page.wait_for_selector(f"[data-backup='{job['backup_id']}'] .row-actions")
    assert page.locator(f"role=button[name='Verify backup {job['backup_id']}']").count() == 1
    assert page.locator("text=Forget…").count() == 0
    page.goto(f"{console.url}/#/restore?host=laptop&volume={name}")
    page.click("role=button[name='Next']")
    wizard_heading(page, "Where to?")
    assert page.locator("input[name=where][value=new]").count() == 1
    assert page.locator("input[name=where][value=replace]").count() == 0
    close(page, errors)


def test_every_page_draws_on_a_desktop_and_a_phone(browser: Any, console: Console) -> None:
    pages = [("overview", "/"), ("volumes", "/volumes"), ("backups", "/backups"),
             ("jobs", "/jobs"), ("policies", "/policies"), ("targets", "/targets"),
             ("keys", "/keys"), ("hosts", "/hosts"), ("audit", "/audit")]
    for viewport, scheme, suffix in ((DESKTOP, "light", ""), (PHONE, "light", "-phone"),
                                     (DESKTOP, "dark", "-dark")):
        page, errors = open_console(browser, console, viewport=viewport, scheme=scheme)
        for shot_name, route in pages:
            page.goto(f"{console.url}/#{route}")
            page.wait_for_selector("main h1")
            page.wait_for_selector("main table, main .cards")
            assert not page.locator("main .error").count(), page.inner_text("main")
            unlabelled = page.evaluate("""() => [...document.querySelectorAll(
                'main input, main select, main textarea, main button, main progress')]
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                             && !e.textContent.trim()).map(e => e.outerHTML)""")
            assert unlabelled == [], (route, unlabelled)  # every control has a name
            if not suffix or shot_name in ("overview", "volumes"):
                shot(page, shot_name + suffix)
            # nothing wider than the screen but the tables' own scroll boxes, on every page
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], (route, width)
        close(page, errors)
