"""Removing a host in the console, on the server and chromium the console tests share
(``conftest.py``). The embedded server has one host (online); here hosts whose worker has
gone are registered in its catalog: the hosts page offers an admin "Remove…" for an
offline host only, the dialog says what goes, what stays and how each policy naming it
changes; kept, nothing changes; confirmed, the page shows what was removed, kept and
changed (the API agrees); a policy naming a host after its dialog opened makes the API
refuse, and the refusal is shown with its hint, nothing removed; an operator is offered
no removal. A refreshed inventory shows on the page once the worker has sent it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from common.config import Settings
from common.db import Backup, Database, Host, Policy, Volume, catalog, hosts
from common.db.models import utcnow
from tests.fixtures.console import Console, close, open_console, shot

pytestmark = pytest.mark.integration
GONE, LATE = "gone-box", "late-box"
POLICIES = ("with-laptop", "gone-only")


@pytest.fixture
def offline(console: Console) -> Iterator[Database]:
    """Two offline hosts with an inventory; ``gone-box`` has a backup and is named by a
    policy with ``laptop`` and one of its own."""
    db = Database(Settings(home=Path(console.env["VOLKEEPER_HOME"])).effective_database_url)
    with db.session() as s:
        for name in (GONE, LATE):
            hosts.register_host(s, name, docker_version="28.2", worker_version="test")
            hosts.replace_inventory(s, name, [{"name": "pgdata", "driver": "local"},
                                              {"name": "cache", "driver": "local"}])
        catalog.add_backup(s, host=GONE, volume="pgdata", target="local", format="tar",
                           key="gone/k", manifest_key="gone/m", checksum="0" * 64)
        s.add(Policy(name=POLICIES[0], selection={"hosts": [GONE, "laptop"],
                                                  "volumes": ["pgdata"]},
                     schedule="0 3 * * *", targets=["local"]))
        s.add(Policy(name=POLICIES[1], selection={"hosts": [GONE]}, schedule="0 4 * * *",
                     targets=["local"]))
    with db.session() as s:
        for name in (GONE, LATE):
            s.get(Host, name).last_seen_at = utcnow() - timedelta(days=1)  # type: ignore[union-attr]
    try:
        yield db
    finally:  # the other console tests see one host and their own policies
        with db.session() as s:
            s.execute(delete(Policy).where(Policy.name.in_((*POLICIES, "late-policy"))))
            s.execute(delete(Backup).where(Backup.host.in_((GONE, LATE))))
            s.execute(delete(Volume).where(Volume.host.in_((GONE, LATE))))
            s.execute(delete(Host).where(Host.name.in_((GONE, LATE))))
        db.dispose()


def _host_names(console: Console) -> set[str]:
    with console.api() as api:
        return {x["name"] for x in api.get("/hosts").json()}


def test_an_offline_host_is_removed_with_its_policies_changed_as_the_dialog_said(
        browser: Any, console: Console, offline: Database) -> None:
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/hosts")
    page.wait_for_selector(f"[data-host='{GONE}']")
    # the machine the server runs on is online: no Remove offered
    assert page.locator("[data-host='laptop'] >> role=button[name='Remove host laptop']"
                        ).count() == 0
    remove = f"[data-host='{GONE}'] >> role=button[name='Remove host {GONE}']"
    page.click(remove)
    page.wait_for_selector(f"dialog[aria-label='Remove host {GONE}?']")
    said = page.inner_text("dialog")
    assert "2 volumes" in said and "backups stay" in said, said
    plan = page.locator("dialog ul.policy-plan li").all_inner_texts()
    assert plan == [f"{POLICIES[1]}: disabled: it names only this host (its selection is "
                    "kept)", f"{POLICIES[0]}: the host is taken out (hosts then: laptop)"], plan
    shot(page, "host-remove")
    page.click("dialog >> role=button[name='Keep it']")
    page.wait_for_selector("dialog", state="detached")
    assert GONE in _host_names(console)  # kept: nothing changed
    with console.api() as api:
        assert api.get(f"/policies/{POLICIES[0]}").json()["hosts"] == [GONE, "laptop"]

    page.click(remove)
    page.click("dialog >> role=button[name='Remove host and update 2 policies']")
    report = page.wait_for_selector(f"[data-removed-host='{GONE}']")
    text = report.inner_text()
    assert f"Host {GONE} removed: 2 volumes forgotten, 1 backup kept" in text, text
    assert (page.inner_text(f"[data-policy-change='{POLICIES[0]}']")
            == f"Policy {POLICIES[0]}: host taken out (hosts now: laptop)")
    assert "disabled" in page.inner_text(f"[data-policy-change='{POLICIES[1]}']")
    assert "Disabled policies still naming it: gone-only" in text
    page.wait_for_selector(f"[data-host='{GONE}']", state="detached")
    shot(page, "host-removed")
    assert GONE not in _host_names(console)
    with console.api() as api:
        p0, p1 = (api.get(f"/policies/{n}").json() for n in POLICIES)
        assert (p0["hosts"], p0["volumes"], p0["enabled"]) == (["laptop"], ["pgdata"], True)
        assert (p1["hosts"], p1["enabled"]) == ([GONE], False)
        kept = api.get("/backups", params={"host": GONE}).json()
        assert [b["volume"] for b in kept] == ["pgdata"]
    close(page, errors)


def test_a_policy_naming_the_host_since_the_dialog_opened_is_refused_and_shown(
        browser: Any, console: Console, offline: Database) -> None:
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/hosts")
    page.click(f"[data-host='{LATE}'] >> role=button[name='Remove host {LATE}']")
    page.wait_for_selector(f"dialog[aria-label='Remove host {LATE}?']")
    assert page.locator("dialog ul.policy-plan").count() == 0  # no policy names it yet
    with console.api() as api:
        r = api.post("/policies", json={"name": "late-policy", "hosts": [LATE],
                                        "schedule": "0 5 * * *", "targets": ["local"]})
        assert r.status_code == 201, r.text
    page.click("dialog >> role=button[name='Remove host']")
    alert = page.wait_for_selector("[role=alert]:has-text('not removed')")
    text = alert.inner_text()
    assert "named by policies: late-policy" in text and "What to do:" in text, text
    assert "--update-policies" in text
    assert LATE in _host_names(console)
    with console.api() as api:
        assert api.get("/policies/late-policy").json()["enabled"] is True
        secret = api.post("/tokens", json={"name": "ops-hosts", "role": "operator"}
                          ).json()["secret"]
    close(page, errors)
    # an operator refreshes an inventory but is not offered a removal (admins only)
    page, errors = open_console(browser, console, token=secret)
    page.goto(f"{console.url}/#/hosts")
    page.wait_for_selector(f"[data-host='{LATE}'] >> role=button[name='Refresh the "
                           f"inventory of {LATE}']")
    assert page.locator("role=button[name^='Remove host']").count() == 0
    close(page, errors)


def test_a_refreshed_inventory_shows_on_the_hosts_page(browser: Any, console: Console) -> None:
    name, _ = console.volume("vkc-inv")
    page, errors = open_console(browser, console)
    page.goto(f"{console.url}/#/hosts")
    cell = "tr[data-host='laptop'] td:nth-child(8) time"
    before = page.get_attribute(cell, "datetime")
    count = page.inner_text("tr[data-host='laptop'] td:nth-child(6)")
    console.docker.client().volumes.create(f"{name}-new")
    console.volumes.append(f"{name}-new")
    page.click("role=button[name='Refresh the inventory of laptop']")
    # the page kept the old time and count until reloaded by hand
    page.wait_for_function(f"""() => document.querySelector("{cell}")
        .getAttribute("datetime") !== {before!r}""", timeout=15_000)
    assert int(page.inner_text("tr[data-host='laptop'] td:nth-child(6)")) == int(count) + 1
    close(page, errors)
