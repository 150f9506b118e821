"""The dry run on a real dockerd refuses what a migration could not keep or reach: a
``local`` source of ``type=tmpfs`` (the cut-over's stop would lose it), a destination of
``type=tmpfs`` (the data would vanish) or ``type=nfs`` (a network mount the worker cannot
sync in place — and no probe mount is tried for it), a driver the host lacks; each named
with what to use instead, nothing left behind."""

from __future__ import annotations

from typing import Any

import pytest

from common.jobs import host
from common.jobs.embedded import EmbeddedRuntime
from common.jobs.migrations import MigrationService
from tests.integration.migration.test_migrate_embedded import _volume, runtime

pytestmark = pytest.mark.integration
__all__ = ["runtime"]  # the fixture, imported for pytest


def test_the_dry_run_refuses_volumes_whose_data_would_not_persist_or_be_reached(
        runtime: EmbeddedRuntime, docker_host_a: Any) -> None:
    docker_host_a.client().volumes.create(
        "mig-mem", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=10m"})
    _volume(docker_host_a, "mig-disk", files=5)
    host.refresh_inventory(runtime.ctx)
    service = MigrationService(runtime.service)

    def refused(**request: Any) -> dict[str, str]:
        out = service.submit(request={"to_host": "laptop", "dry_run": True} | request)
        assert out["dry_run"] is True and out["ok"] is False, out
        return {c["name"]: c["detail"] for c in out["checks"] if not c["ok"]}

    src = refused(volume="mig-mem", to_volume="mig-mem-2")
    assert "type=tmpfs" in src["source persists"]
    assert "copy them into a persistent volume" in src["source persists"]
    mem = refused(volume="mig-disk", to_volume="mig-disk-mem",
                  driver_opts={"type": "tmpfs", "device": "tmpfs"})
    assert "would vanish" in mem["destination persists"]
    nfs = refused(volume="mig-disk", to_volume="mig-disk-nfs",
                  driver_opts={"type": "nfs", "o": "addr=192.0.2.1,ro", "device": ":/x"})
    assert list(nfs) == ["file access"], nfs
    assert "nfs mount" in nfs["file access"] and "mount the export" in nfs["file access"]
    other = refused(volume="mig-disk", to_volume="mig-disk-x", driver="no/such-plugin")
    assert "'no/such-plugin' is not available" in other["driver"]
    names = [v.name for v in docker_host_a.client().volumes.list()]
    assert not any(n.startswith(("mig-disk-", "mig-mem-", "volkeeper-probe"))
                   for n in names), names
