"""The catch-up round in the fleet when its worker dies: the destination's worker
SIGKILLed while the catch-up's apply writes what the application wrote during the
pre-copy. Nothing was stopped, so the rollback only removes the destination; the source
is untouched and its container never stopped."""

from __future__ import annotations

import pytest

from tests.fixtures.fleet import Fleet
from tests.integration.migration.test_migrate_fleet import _running, _start, _wait, _writer
from tests.integration.migration.test_migrate_fleet_faults import (
    _contents,
    _grow,
    _kill_while_running,
    _source,
    _volumes,
    throttled,
)

pytestmark = pytest.mark.integration


def test_the_destination_worker_killed_in_the_catch_up_ends_rolled_back(
        fleet: Fleet) -> None:
    name, src = _source(fleet, "mck")
    app = _writer(fleet, "host-a", name)
    try:
        with throttled(fleet, "host-b"):
            fleet.wait_volume("host-a", name)
            m = _start(fleet, {"volume": name, "host": "host-a", "to_host": "host-b",
                               "via": "s3"})
            _wait(fleet, m["id"], _running("precopy.restore"), timeout=90)
            _grow(src)  # the catch-up carries it: seconds at host-b's throttled rate
            contents = _contents(src)
            _kill_while_running(fleet, "host-b", m["id"], "catchup.apply.1")
        done = _wait(fleet, m["id"], timeout=120)
        assert done["state"] == "rolled_back", done
        assert done["reason"].startswith("catchup.apply.1 failed"), done["reason"]
        steps = {j["step"] for p in done["phases"] for j in p["jobs"]}
        assert "cutover.backup" not in steps and "rollback.start_containers" not in steps
        assert name not in _volumes(fleet, "host-b")
        app.reload()
        assert app.status == "running"  # never stopped
        assert _contents(src) == contents
    finally:
        app.remove(force=True)
