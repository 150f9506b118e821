"""The console's management pages in a real browser, on the server and chromium the
console tests share (``conftest.py``): a policy created with its next runs shown and its
retention previewed, then listed and served by the API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.console import Console, close, open_console, shot

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
    shot(page, "policy-new")
    page.click("role=button[name='Create policy']")
    page.wait_for_selector("[data-policy='console-nightly']")
    assert name in page.inner_text("[data-policy='console-nightly']")
    shot(page, "policies")
    with console.api() as api:
        p = api.get("/policies/console-nightly").json()
    assert (p["schedule"], p["tz"], p["targets"]) == ("30 2 * * *", "Europe/Berlin", ["local"])
    assert p["retention"] == {"keep_last": 3} and p["next_run_at"]
    assert [m["volume"] for m in p["matches"]] == [name]
    close(page, errors)
