"""The console's management pages in a real browser, on the server and chromium the
console tests share (``conftest.py``): a policy created with its next runs shown and its
retention previewed, then listed and served by the API, then edited into a dump of named
databases; a policy edited without losing what the form left alone (its verify
read-back); the jobs list offering Cancel for
running jobs only; a backup copied and drilled from the backups page; an added target
leaving an empty form; evacuating the only host explained rather than offered; the forget
dialog fitting a phone; a backups filter matching nothing saying so."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.fixtures.console import Console, close, open_console, shot
from tests.fixtures.util import wait_for

pytestmark = pytest.mark.integration


def test_a_policy_is_created_with_its_next_runs_shown(browser: Any, console: Console) -> None:
    name, path = console.volume("vkc-pol")
    (path / "a.txt").write_text("policy data")
    job = console.job("/backups", {"volume": name, "format": "tar"})
    assert job["state"] == "succeeded", job["error"]
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/policies")
    page.click("role=link[name='New policy']")
    page.wait_for_selector("h1:text-is('New policy')")
    page.fill("input[name=name]", "console-nightly")
    page.fill("input[name=volumes]", name)
    page.fill("input[name=tz]", "Europe/Berlin")
    page.fill("input[name=schedule]", "61 2 * * *")  # a bad minute: the helper says so
    page.wait_for_selector(".next-runs .error:has-text('invalid schedule')")
    page.fill("input[name=schedule]", "30 2 * * *")
    page.wait_for_selector(".next-runs li >> nth=4")
    runs = page.locator(".next-runs time").all_inner_texts()
    assert len(runs) == 5 and all(r.endswith(("02:30", "03:00")) for r in runs), runs
    for box in page.locator("input[name=targets]").all():
        box.set_checked(box.get_attribute("value") == "local")
    page.fill("input[name=keep_daily]", "")
    page.fill("input[name=keep_weekly]", "")
    page.fill("input[name=keep_last]", "3")
    page.click("role=button[name='Preview retention']")
    row = f"[data-preview='laptop/{name}/local']"
    page.wait_for_selector(row)
    assert page.inner_text(f"{row} td:nth-child(3)") == "1"  # kept: the one backup
    page.check("input[name=stop_containers]")
    page.fill("input[name=excludes]", "cache/**, *.tmp")
    shot(page, "policy-new")
    page.click("role=button[name='Create policy']")
    page.wait_for_selector("[data-policy='console-nightly']")
    assert name in page.inner_text("[data-policy='console-nightly']")
    shot(page, "policies")
    with console.api() as api:
        p = api.get("/policies/console-nightly").json()
    assert (p["schedule"], p["tz"], p["targets"]) == ("30 2 * * *", "Europe/Berlin", ["local"])
    assert p["retention"] == {"keep_last": 3} and p["next_run_at"]
    assert p["stop_containers"] and p["excludes"] == ["cache/**", "*.tmp"]
    assert (p["snapshot"], p["dump"]) == (None, None)
    assert [m["volume"] for m in p["matches"]] == [name]
    # edited into a dump of two databases: the form's field beside the dump select
    page.goto(f"{console.url}/#/policies/console-nightly")
    page.wait_for_selector("h1:text-is('Policy console-nightly')")
    assert page.input_value("input[name=dump_databases]") == ""
    page.uncheck("input[name=stop_containers]")
    page.select_option("select[name=dump]", "postgres")
    page.fill("input[name=dump_databases]", "shop, crm")
    page.click("role=button[name='Save policy']")
    page.wait_for_selector("[data-policy='console-nightly']")
    with console.api() as api:
        p = api.get("/policies/console-nightly").json()
    assert (p["dump"], p["dump_databases"]) == ("postgres", ["shop", "crm"])
    page.goto(f"{console.url}/#/policies/console-nightly")
    page.wait_for_selector("h1:text-is('Policy console-nightly')")
    assert page.input_value("input[name=dump_databases]") == "shop, crm"
    close(page, errors)


def test_the_jobs_list_offers_cancel_only_for_queued_and_running_jobs(
        browser: Any, console: Console) -> None:
    small, path = console.volume("vkc-done")
    (path / "f").write_text("x")
    done = console.job("/backups", {"volume": small, "format": "tar"})
    name, path = console.volume("vkc-long")
    for i in range(48):  # 96 MiB at 8 MiB/s: ~12 s, cancelled long before it ends
        (path / f"blob{i}").write_bytes(os.urandom(2 << 20))
    page, errors = open_console(browser, console)
    with console.api() as api:
        job = api.post("/backups", json={"volume": name, "format": "tar"}).json()
    page.goto(f"{console.url}/#/jobs")
    row = f"[data-job='{job['id']}']"
    cancel = f"{row} >> role=button[name='Cancel job {job['id']}']"
    page.wait_for_selector(cancel)
    assert page.locator(f"[data-job='{done['id']}'] button").count() == 0
    shot(page, "jobs-running")
    page.click(cancel)
    page.click("dialog[open] >> role=button[name='Cancel job']")
    page.wait_for_selector(f"{row}[data-state='cancelled']")
    assert page.locator(f"{row} button").count() == 0
    with console.api() as api:
        assert api.get(f"/jobs/{job['id']}").json()["state"] == "cancelled"
    close(page, errors)


def test_a_backup_is_copied_and_drilled_from_the_backups_page(browser: Any, console: Console
                                                              ) -> None:
    name, path = console.volume("vkc-copy")
    (path / "doc.txt").write_text("copied and drilled")
    backup = console.job("/backups", {"volume": name, "format": "tar.gz"})["backup_id"]
    with console.api() as api:
        r = api.post("/targets", json={"name": "spare", "url": f"file://{console.root / 'spare'}"})
        assert r.status_code == 201, r.text
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/backups?volume={name}")
    row = f"[data-backup='{backup}']"
    page.click(f"{row} >> role=button[name='Copy backup {backup}']")
    page.select_option("dialog select[name=copy-target]", "spare")
    page.click("dialog >> role=button[name='Copy']")
    page.click(f"{row} >> role=button[name='Drill backup {backup}']")
    with console.api() as api:
        wait_for(lambda: api.get("/backups", params={"volume": name, "target": "spare"}).json(),
                 60, "the copy on target spare")
        wait_for(lambda: any(j["state"] == "succeeded"
                             for j in api.get("/drills", params={"volume": name}).json()),
                 60, "the drill")
        drill = api.get("/drills", params={"volume": name}).json()[0]
    assert drill["result"]["passed"], drill
    page.goto(f"{console.url}/#/")
    page.wait_for_selector(f"section td a:text-is('{drill['id']}')")  # drills of the last 24 h
    page.click(f"section td a:text-is('{drill['id']}')")
    # its page says what the drill found (it was JSON folded under "Result", below a bar
    # counting the comparison's tar stream: "1.0 MiB of 1.0 MiB · 3 of 3 files")
    facts = page.inner_text("[data-result='drill']")
    assert "passed" in facts and "18 B, 1 file" in facts and "no differences" in facts, facts
    assert page.locator("main progress").count() == 0
    assert page.locator("[data-result='drill'] .badge.ok:text-is('passed')").count() == 1
    close(page, errors)


def test_chosen_paths_from_the_backups_tree_are_restored_into_a_new_volume(
        browser: Any, console: Console) -> None:
    name, src = console.volume("vkc-part")
    (src / "keep" / "sub").mkdir(parents=True)
    (src / "skip").mkdir()
    (src / "keep" / "a.txt").write_text("not chosen")
    (src / "keep" / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    (src / "skip" / "c.txt").write_text("not chosen either")
    (src / "top.txt").write_text("chosen")
    job = console.job("/backups", {"volume": name})
    assert job["state"] == "succeeded", job["error"]
    into = f"{name}-part"
    console.volumes.append(into)
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/restore?host=laptop&volume={name}")
    page.click("role=button[name='Next']")
    page.wait_for_selector("#wizard-h:text-is('Where to?')")
    page.fill("input[name=into]", into)
    page.click("role=button[name='Next']")
    page.wait_for_selector("#wizard-h:text-is('What to restore?')")
    page.check("input[name=what][value=paths]")
    page.click("role=button[name='Open keep']")
    page.check("input[name=path][value='keep/sub']")
    page.check("input[name=path][value='top.txt']")
    assert page.locator("[data-path='skip']").count() == 1  # listed, not chosen
    shot(page, "restore-paths")
    page.click("role=button[name='Check']")
    page.wait_for_selector("#wizard-h:text-is('All checks passed')")
    assert "selected paths" in page.inner_text(".checks")
    # the dry run counts the selection (b.bin and top.txt), not the backup's 4 files
    assert "restore 2 files" in page.inner_text("main"), page.inner_text("main")
    page.click("role=button[name='Continue']")
    facts = page.inner_text(".facts")
    assert "keep/sub, top.txt" in facts and "293 KiB in the chosen paths (the whole backup: " \
        "293 KiB, 4 files)" in facts, facts
    page.click("role=button[name='Start restore']")
    page.wait_for_selector("#wizard-h:text-is('Restored')")
    dst = console.mountpoint(into)
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*")) == [
        "keep", "keep/sub", "keep/sub/b.bin", "top.txt"]
    assert (dst / "keep" / "sub" / "b.bin").read_bytes() == (src / "keep" / "sub" / "b.bin"
                                                             ).read_bytes()
    assert (dst / "top.txt").read_text() == "chosen"
    with console.api() as api:  # the tree API itself: one level, directories first
        tree = api.get(f"/backups/{job['backup_id']}/tree", params={"path": "keep"}).json()
        assert [(e["name"], e["type"]) for e in tree["entries"]] == [("sub", "dir"),
                                                                      ("a.txt", "file")]
        missing = api.get(f"/backups/{job['backup_id']}/tree", params={"path": "nope"})
        assert missing.status_code == 404 and "'nope'" in missing.json()["error"]["message"]
    # the listings the tree made are jobs, but the history shows them only when asked
    page.goto(f"{console.url}/#/jobs?volume={name}")
    page.wait_for_selector(f"[data-job='{job['id']}']")
    assert page.locator("main td:text-is('browse')").count() == 0
    page.select_option("select[name=kind]", "browse")
    page.wait_for_selector("main td:text-is('browse')")
    close(page, errors)


def test_the_retention_preview_fits_a_phone(browser: Any, console: Console) -> None:
    """The preview's table once widened its fieldset (min-content) past the screen."""
    name, path = console.volume("vkc-polphone")
    (path / "a.txt").write_text("phone")
    assert console.job("/backups", {"volume": name})["state"] == "succeeded"
    page, errors = open_console(browser, console, viewport={"width": 375, "height": 812})
    page.goto(f"{console.url}/#/policies/new")
    page.wait_for_selector("h1:text-is('New policy')")
    page.fill("input[name=volumes]", name)
    for box in page.locator("input[name=targets]").all():  # other tests add targets
        box.set_checked(box.get_attribute("value") == "local")
    page.click("role=button[name='Preview retention']")
    page.wait_for_selector(f"[data-preview='laptop/{name}/local']")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    close(page, errors)


def test_editing_a_policy_keeps_what_the_form_does_not_change(browser: Any, console: Console
                                                               ) -> None:
    name, _ = console.volume("vkc-keep")
    with console.api() as api:
        resp = api.post("/policies", json={
            "name": "console-subset", "volumes": [name], "schedule": "0 3 * * *",
            "targets": ["local"], "verify_schedule": "@weekly", "verify_subset": 10})
        assert resp.status_code == 201, resp.text
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/policies/console-subset")
    page.wait_for_selector("h1:text-is('Policy console-subset')")
    assert page.input_value("input[name=verify_subset]") == "10"
    page.fill("input[name=jitter_seconds]", "60")
    page.click("role=button[name='Save policy']")
    page.wait_for_selector("[data-policy='console-subset']")
    with console.api() as api:
        p = api.get("/policies/console-subset").json()
        api.delete("/policies/console-subset")
    assert (p["jitter_seconds"], p["verify_subset"]) == (60, 10)  # it was dropped (None)
    close(page, errors)


def test_an_added_target_leaves_no_credentials_in_the_form(browser: Any, console: Console
                                                           ) -> None:
    name = f"vkc-tgt-{os.urandom(3).hex()}"
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/targets")
    page.wait_for_selector("#main[data-ready='targets']")
    page.click("summary:text('Add a target')")
    page.fill("input[name=target-name]", name)
    page.fill("input[name=target-url]", f"file://{console.root}/{name}")
    page.fill("input[name=access_key_id]", "AKIAEXAMPLE")
    page.fill("input[name=secret_access_key]", "not-to-be-left-behind")
    page.click("role=button[name='Add target']")
    page.wait_for_selector(f"role=button[name='Remove target {name}']")
    # the secret stayed in the form, and a second press added the same target again
    assert [page.input_value(f"input[name={n}]") for n in
            ("target-name", "target-url", "access_key_id", "secret_access_key")] == [""] * 4
    page.click(f"role=button[name='Remove target {name}']")
    page.click("dialog[open] >> role=button[name='Remove target']")
    page.wait_for_selector(f"role=button[name='Remove target {name}']", state="detached")
    close(page, errors)


def test_evacuating_the_only_host_says_a_second_one_is_needed(browser: Any, console: Console
                                                               ) -> None:
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/evacuations")
    page.click("role=link[name='Evacuate a host…']")
    page.wait_for_selector("#main[data-ready='evacuate']")
    # it offered a form whose Check did nothing (no host to choose)
    assert page.locator("role=button[name='Check']").count() == 0
    assert "needs a second host" in page.inner_text("main")
    close(page, errors)


def test_the_forget_dialog_fits_a_phone(browser: Any, console: Console) -> None:
    name, path = console.volume("vkc-forget-phone")
    (path / "a.txt").write_text("forget me")
    backup = console.job("/backups", {"volume": name})["backup_id"]  # repo: a long snapshot id
    page, errors = open_console(browser, console, viewport={"width": 375, "height": 812})
    page.goto(f"{console.url}/#/backups?volume={name}")
    page.click(f"role=button[name='Forget backup {backup}']")
    page.wait_for_selector("dialog[open] ul.lost")
    # the snapshot id ran out of the dialog, behind a scrollbar of its own
    assert page.eval_on_selector("dialog[open]", "d => d.scrollWidth <= d.clientWidth")
    page.keyboard.press("Escape")
    close(page, errors)


def test_a_filter_matching_no_backup_says_so(browser: Any, console: Console) -> None:
    name, _ = console.volume("vkc-filter")
    assert console.job("/backups", {"volume": name})["state"] == "succeeded"
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/backups?volume={name[:-3]}")  # a part of the name
    page.wait_for_selector("main table td.muted")
    # it read "no backups yet", as if nothing had been backed up
    assert "no backup matches these filters" in page.inner_text("main table")
    close(page, errors)
