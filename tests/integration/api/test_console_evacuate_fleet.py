"""A real evacuation from the console (chromium, Playwright) in a fleet of its own: two
fresh dockerds with a worker each, the API with its coordinator, a shared file target.
An operator opens the hosts page, evacuates the first host to the second (the dry run
passes every volume's checks), follows the evacuation's page until both volumes have
moved, and the second host then holds each volume's content, file for file."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.auth import login_url
from tests.fixtures.console import DESKTOP, shot
from tests.fixtures.fleet import TOKEN, Fleet, running_fleet
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration
FROM, TO = "evac-a", "evac-b"


@pytest.fixture
def two_hosts(postgres_server: Any, redis_server: Any, dockerd_factory: Any,
              tmp_path: Path) -> Iterator[Fleet]:
    """A fleet of two empty hosts (no other test's volumes to move) and a target."""
    docker = {FROM: dockerd_factory.start(FROM), TO: dockerd_factory.start(TO)}
    database_url = postgres_server.create_database(f"evac_{uuid.uuid4().hex[:8]}")
    with running_fleet(tmp_path, database_url, redis_server.url, docker) as f:
        shared = tmp_path / "shared"
        shared.mkdir()
        with f.http as c:
            r = c.post("/targets", json={"name": "shared", "url": f"file://{shared}"})
            assert r.status_code == 201, r.text
        yield f


def _volume(fleet: Fleet, name: str) -> Path:
    client = fleet.docker[FROM].client()
    client.volumes.create(name)
    fleet.wait_volume(FROM, name)
    return Path(client.volumes.get(name).attrs["Mountpoint"])


def test_a_host_is_evacuated_from_the_console(browser: Any, two_hosts: Fleet) -> None:
    fleet = two_hosts
    config = _volume(fleet, "app-config")
    build_fidelity_tree(config)
    data = _volume(fleet, "app-data")
    (data / "table.db").write_bytes(os.urandom(3 << 20))
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.set_default_timeout(180_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(login_url(fleet.api_url, TOKEN))
    page.wait_for_url(fleet.api_url + "/")
    page.goto(f"{fleet.api_url}/#/hosts")
    page.click(f"role=link[name='Evacuate {FROM}']")
    page.wait_for_selector("#main[data-ready='evacuate']")
    page.select_option("select[name=to-host]", TO)
    page.click("role=button[name='Check']")
    page.wait_for_selector("#evac-checks-h:text-is('All checks passed')")
    assert page.locator(".evac-volumes > li").count() == 2
    page.click("role=button[name='Start evacuation']")
    page.wait_for_selector("#main[data-ready='evacuation']")
    eid = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("[data-fact='volumes']:text-is('2: 2 succeeded')")
    assert page.locator("tr[data-migration][data-state='succeeded']").count() == 2
    shot(page, "evacuation")
    dest = fleet.docker[TO].client()
    for name, src in (("app-config", config), ("app-data", data)):
        assert compare_trees(src, Path(dest.volumes.get(name).attrs["Mountpoint"])) == []
    page.goto(f"{fleet.api_url}/#/evacuations")
    page.wait_for_selector(f"[data-evacuation='{eid}'][data-state='succeeded']")
    shot(page, "evacuations")
    page.context.close()
    assert errors == []
