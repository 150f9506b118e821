"""Removing a host (``common.jobs.host_removal`` through the audited service): what is
refused (online, unfinished job or migration, this machine), what goes (the host row and
its inventory: health and metrics no longer count it) and what stays (its backups, still
listed; other hosts untouched); a host that comes back registers again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from common import health
from common.audit import list_entries
from common.config import Settings
from common.db import Database, JobState, catalog, hosts, jobs
from common.db.migrate import upgrade
from common.db.migration_rows import Migration
from common.db.models import Host, Policy, utcnow
from common.db.rows import SessionRows
from common.errors import Conflict, NotFound
from common.jobs import reads
from common.jobs.operations import OperationsService
from common.metrics import CatalogCollector
from tests.unit.api.test_api import RecordingDispatcher


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(home=tmp_path, host_name="here", **kw)  # type: ignore[arg-type]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[OperationsService]:
    settings = _settings(tmp_path)
    db = Database(settings.effective_database_url)
    upgrade(db, quiet=True)
    with db.session() as s:
        for name in ("here", "old", "other"):
            hosts.register_host(s, name, docker_version="28", worker_version="t")
            hosts.replace_inventory(s, name, [{"name": "data", "driver": "local"},
                                              {"name": "logs", "driver": "local"}])
        catalog.ensure_target(s, "local", f"file://{tmp_path}/backups")
        for volume in ("data", "data", "logs"):
            catalog.add_backup(s, host="old", volume=volume, target="local", format="tar",
                               key=f"k-{volume}", manifest_key="m", checksum="0" * 64)
        catalog.add_backup(s, host="other", volume="data", target="local", format="tar",
                           key="k-o", manifest_key="m", checksum="0" * 64)
    yield OperationsService(db, RecordingDispatcher(), settings)  # type: ignore[arg-type]
    db.dispose()


def _silent(svc: OperationsService, name: str, seconds: float = 3600) -> None:
    """Host ``name``'s worker last seen ``seconds`` ago."""
    with svc.db.session() as s:
        s.execute(update(Host).where(Host.name == name)
                  .values(last_seen_at=utcnow() - timedelta(seconds=seconds)))


def _hosts(svc: OperationsService) -> list[str]:
    with svc.db.session() as s:
        return [h.name for h in hosts.list_hosts(s)]


def test_an_offline_host_goes_with_its_inventory_and_its_backups_stay(
        service: OperationsService) -> None:
    _silent(service, "old")
    _silent(service, "other")
    assert health.check(service.db, service.settings)["workers"]["old"] == "down"
    with service.db.session() as s:
        s.add(Policy(name="here-only", selection={"hosts": ["here"]}, schedule="@daily",
                     targets=["local"]))
    got = service.remove_host(host="old", requested_by="alice")
    assert (got.name, got.volumes, got.backups_kept, got.policies, got.policies_changed) == (
        "old", 2, 3, [], [])
    assert _hosts(service) == ["here", "other"]
    with service.db.session() as s:
        assert hosts.list_volumes(s, "old") == []
        assert len(hosts.list_volumes(s, "other")) == 2  # another host's inventory stays
        rows = SessionRows(s)
        kept = reads.list_backups(rows, host="old")
        assert sorted(b["volume"] for b in kept) == ["data", "data", "logs"]
        catalog.get_backup(s, kept[0]["id"])  # still there to restore elsewhere
        assert len(reads.list_backups(rows, host="other")) == 1
    checked = health.check(service.db, service.settings)
    assert "old" not in checked["workers"] and checked["workers"]["other"] == "down"
    names = {(m.name, tuple(sorted(s.labels.items())))
             for m in CatalogCollector(service.db, service.settings).collect()
             for s in m.samples if m.name == "volkeeper_host_up"}
    assert ("volkeeper_host_up", (("host", "old"),)) not in names
    assert ("volkeeper_host_up", (("host", "other"),)) in names
    [entry] = list_entries(service.db, action="host.")
    assert (entry["actor"], entry["object"], entry["outcome"]) == ("alice", "old", "ok")


def _backup_series(svc: OperationsService) -> set[tuple[str, str, str]]:
    """(family, host, volume) of every per-volume series computed from backup rows."""
    return {(m.name, s.labels["host"], s.labels["volume"])
            for m in CatalogCollector(svc.db, svc.settings).collect()
            for s in m.samples if m.name.startswith("volkeeper_volume_")}


def test_a_removed_hosts_backup_series_leave_the_metrics_its_backups_stay(
        service: OperationsService) -> None:
    before = _backup_series(service)
    for family in ("volkeeper_volume_last_good_backup_timestamp_seconds",
                   "volkeeper_volume_last_good_backup_logical_bytes",
                   "volkeeper_volume_last_good_backup_stored_bytes"):
        assert {(family, "old", "data"), (family, "old", "logs"),
                (family, "other", "data")} <= before
    _silent(service, "old")
    service.remove_host(host="old")
    after = _backup_series(service)
    assert {h for _, h, _ in after} == {"other"}
    assert ("volkeeper_volume_last_good_backup_timestamp_seconds", "other", "data") in after
    with service.db.session() as s:  # the rows the series came from stay
        assert len(reads.list_backups(SessionRows(s), host="old")) == 3


def test_an_online_host_is_refused_with_how_to_make_it_removable(
        service: OperationsService) -> None:
    with pytest.raises(Conflict) as e:
        service.remove_host(host="old")
    assert "online" in e.value.message and "stop its worker" in (e.value.hint or "")
    assert "45s" in (e.value.hint or "")
    _silent(service, "old", seconds=30)  # still within VOLKEEPER_HOST_OFFLINE_AFTER_SECONDS
    with pytest.raises(Conflict):
        service.remove_host(host="old")
    assert _hosts(service) == ["here", "old", "other"]
    refusals = [e["outcome"] for e in list_entries(service.db, action="host.remove")]
    assert len(refusals) == 2
    assert all(o.startswith("error: conflict: host 'old' is online") for o in refusals)


def test_a_host_that_comes_online_during_the_removal_keeps_everything(
        service: OperationsService, monkeypatch: pytest.MonkeyPatch) -> None:
    # the worker's heartbeat lands between the online check and the delete
    monkeypatch.setattr(hosts, "is_online", lambda *a, **k: False)
    with pytest.raises(Conflict) as e:
        service.remove_host(host="old")
    assert "came online" in e.value.message
    assert _hosts(service) == ["here", "old", "other"]
    with service.db.session() as s:  # the inventory deleted with it is rolled back
        assert len(hosts.list_volumes(s, "old")) == 2


@pytest.mark.parametrize("state", [JobState.queued, JobState.running])
def test_a_host_with_an_unfinished_job_is_refused(service: OperationsService,
                                                  state: JobState) -> None:
    _silent(service, "old")
    with service.db.session() as s:
        job = jobs.create_job(s, kind="backup", host="old", volume="data")
        if state is JobState.running:
            jobs.start_job(s, job.id, "old@gone:1")
    with pytest.raises(Conflict) as e:
        service.remove_host(host="old")
    assert job.id in e.value.message and str(state) in e.value.message
    assert "volkeeper cancel" in (e.value.hint or "")
    with service.db.session() as s:
        jobs.finish_job(s, job.id, JobState.failed, error="gone")
    assert service.remove_host(host="old").volumes == 2  # a finished job is history


@pytest.mark.parametrize("side", ["source", "dest"])
def test_a_host_in_an_unfinished_migration_or_evacuation_is_refused(
        service: OperationsService, side: str) -> None:
    _silent(service, "old")
    ends = ({"source_host": "old", "dest_host": "other"} if side == "source"
            else {"source_host": "other", "dest_host": "old"})
    with service.db.session() as s:
        m = Migration(source_volume="data", dest_volume="data", via="local",
                      state="running", batch="ev1", **ends)
        s.add(m)
        s.flush()
        mid = m.id
    with pytest.raises(Conflict) as e:
        service.remove_host(host="old")
    assert mid in e.value.message and "evacuation ev1" in e.value.message
    assert "volkeeper migration cancel" in (e.value.hint or "")
    with service.db.session() as s:
        s.execute(update(Migration).values(state="rolled_back"))
    service.remove_host(host="old")
    assert _hosts(service) == ["here", "other"]


def test_embedded_this_machine_cannot_be_removed_an_old_name_can(
        service: OperationsService) -> None:
    _silent(service, "here")  # even when no command ran for a while
    with pytest.raises(Conflict) as e:
        service.remove_host(host="here")
    assert "this machine" in e.value.message
    with pytest.raises(NotFound):
        service.remove_host(host="typo")
    _silent(service, "old")
    service.remove_host(host="old")
    assert _hosts(service) == ["here", "other"]


def test_a_host_that_comes_back_registers_again(service: OperationsService) -> None:
    _silent(service, "old")
    service.remove_host(host="old")
    with service.db.session() as s:
        hosts.touch_host(s, "old")  # a heartbeat alone does not bring it back …
    assert "old" not in _hosts(service)
    with service.db.session() as s:  # … its next registration (inventory loop) does
        hosts.register_host(s, "old", docker_version="28", worker_version="t")
        hosts.replace_inventory(s, "old", [{"name": "data", "driver": "local"}])
    assert "old" in _hosts(service)
    with service.db.session() as s:
        assert [v.name for v in hosts.list_volumes(s, "old")] == ["data"]
        assert len(reads.list_backups(SessionRows(s), host="old")) == 3


def _policies(svc: OperationsService) -> dict[str, tuple[list[str], bool, dict[str, object]]]:
    with svc.db.session() as s:
        return {p.name: (list(p.selection.get("hosts") or []), p.enabled, dict(p.selection))
                for p in s.scalars(select(Policy))}


@pytest.fixture
def named(service: OperationsService) -> OperationsService:
    """Policies naming ``old``: with another host, only it (with a volume: dropping the
    host would widen it to ``data`` everywhere), only it but disabled; and one that
    does not name it."""
    _silent(service, "old")
    with service.db.session() as s:
        for name, selection, enabled in (
                ("nightly", {"hosts": ["old", "other"]}, True),
                ("old-data", {"hosts": ["old"], "volumes": ["data"]}, True),
                ("retired", {"hosts": ["old"]}, False),
                ("here-only", {"hosts": ["here"]}, True)):
            s.add(Policy(name=name, selection=selection, schedule="@daily",
                         targets=["local"], enabled=enabled))
    return service


def test_policies_naming_the_host_refuse_the_removal_saying_what_would_change(
        named: OperationsService) -> None:
    before = _policies(named)
    with pytest.raises(Conflict) as e:
        named.remove_host(host="old")
    msg = e.value.message
    assert "nightly (names other hosts too: it would be taken out of its hosts)" in msg
    assert "old-data (names only this host: it would be disabled)" in msg
    assert "retired" not in msg and "here-only" not in msg  # nothing to change there
    assert "--update-policies" in (e.value.hint or "")
    assert "update_policies=true" in (e.value.hint or "")
    assert _hosts(named) == ["here", "old", "other"] and _policies(named) == before


def test_update_policies_takes_the_host_out_disables_those_naming_only_it_and_says_so(
        named: OperationsService) -> None:
    got = named.remove_host(host="old", update_policies=True, requested_by="alice")
    assert [(c.name, c.change, c.hosts) for c in got.policies_changed] == [
        ("nightly", "host_dropped", ["other"]), ("old-data", "disabled", ["old"])]
    assert got.policies == ["old-data", "retired"]  # still name it, disabled
    after = _policies(named)
    assert after["nightly"][:2] == (["other"], True)
    # disabled, not widened: its selection (host and volume) is as it was
    assert after["old-data"] == (["old"], False, {"hosts": ["old"], "volumes": ["data"]})
    assert after["retired"][:2] == (["old"], False)
    assert after["here-only"][:2] == (["here"], True)
    assert _hosts(named) == ["here", "other"]
    entries = list_entries(named.db, action="policy.update")
    assert sorted((e["actor"], e["object"], e["outcome"]) for e in entries) == [
        ("alice", "nightly", "ok"), ("alice", "old-data", "ok")]
    assert all(e["details"]["reason"] == "host old removed" for e in entries)
    [removal] = list_entries(named.db, action="host.remove")
    assert removal["details"]["update_policies"] is True


def test_a_refused_removal_changes_no_policy_even_with_update_policies(
        named: OperationsService) -> None:
    before = _policies(named)
    with named.db.session() as s:
        jobs.create_job(s, kind="backup", host="old", volume="data")
    with pytest.raises(Conflict):
        named.remove_host(host="old", update_policies=True)
    assert _policies(named) == before and "old" in _hosts(named)
    assert list_entries(named.db, action="policy.update") == []


def test_policy_changes_roll_back_when_the_host_comes_online_during_the_removal(
        named: OperationsService, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _policies(named)
    with named.db.session() as s:
        hosts.touch_host(s, "old")  # its heartbeat lands after the online check
    monkeypatch.setattr(hosts, "is_online", lambda *a, **k: False)
    with pytest.raises(Conflict) as e:
        named.remove_host(host="old", update_policies=True)
    assert "came online" in e.value.message
    assert _policies(named) == before and "old" in _hosts(named)
    assert list_entries(named.db, action="policy.update") == []
