"""`volkeeper hosts remove NAME`, run as a whole embedded command after the machine was
renamed: the old name goes with its volumes, its backups stay listed, this machine's name
is refused; `volkeeper hosts` (and `--json`) still lists hosts. No Docker needed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from common.db import catalog as db_catalog
from common.db import hosts
from common.db.models import Host, Policy, utcnow
from tests.unit.cli.test_release import _cli, catalog


def _renamed(home: Path) -> None:
    """The catalog of a machine once called ``oldname`` (now ``laptop``, the name the
    commands run as): the old name's inventory and a backup of it."""
    with catalog(home) as s:
        hosts.register_host(s, "oldname", docker_version="27", worker_version="t")
        hosts.replace_inventory(s, "oldname", [{"name": "pgdata", "driver": "local"}])
        db_catalog.ensure_target(s, "local", f"file://{home}/backups")
        db_catalog.add_backup(s, host="oldname", volume="pgdata", target="local",
                              format="tar", key="k", manifest_key="k.m", checksum="0" * 64)
        s.execute(update(Host).where(Host.name == "oldname")
                  .values(last_seen_at=utcnow() - timedelta(days=1)))


def test_the_old_name_of_a_renamed_machine_is_removed_and_its_backups_stay(
        tmp_path: Path) -> None:
    _renamed(tmp_path)
    listed = _cli(tmp_path, "hosts", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {h["name"] for h in json.loads(listed.stdout)} == {"laptop", "oldname"}
    assert "oldname" in _cli(tmp_path, "volumes", "--json").stdout
    p = _cli(tmp_path, "hosts", "remove", "oldname")
    assert p.returncode == 0, p.stderr
    assert "host oldname removed (1 volume(s) forgotten; 1 backup(s) kept" in p.stderr
    assert "Docker" not in p.stderr  # a catalog command leaves Docker alone
    table = _cli(tmp_path, "hosts")
    assert table.returncode == 0 and "laptop" in table.stdout
    assert "oldname" not in table.stdout
    assert "oldname" not in _cli(tmp_path, "volumes", "--json").stdout
    backups = json.loads(_cli(tmp_path, "backups", "--host", "oldname", "--json").stdout)
    assert [b["volume"] for b in backups] == ["pgdata"]
    audit = json.loads(_cli(tmp_path, "audit", "--action", "host.remove", "--json").stdout)
    assert [(e["object"], e["outcome"]) for e in audit] == [("oldname", "ok")]


def test_this_machine_and_an_unknown_name_are_refused_with_a_hint(tmp_path: Path) -> None:
    _renamed(tmp_path)
    p = _cli(tmp_path, "hosts", "remove", "laptop", "--json")
    assert p.returncode == 1
    assert "is this machine" in p.stderr and "hint:" in p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    p = _cli(tmp_path, "hosts", "remove", "typo")
    assert p.returncode == 1 and "host 'typo' not found" in p.stderr
    with catalog(tmp_path) as s:
        assert "oldname" in {h.name for h in hosts.list_hosts(s)}  # nothing was removed


def test_policies_naming_it_refuse_it_and_update_policies_says_what_it_changed(
        tmp_path: Path) -> None:
    _renamed(tmp_path)
    with catalog(tmp_path) as s:
        s.add(Policy(name="both", selection={"hosts": ["oldname", "laptop"]},
                     schedule="@daily", targets=["local"]))
        s.add(Policy(name="pg", selection={"hosts": ["oldname"], "volumes": ["pgdata"]},
                     schedule="@daily", targets=["local"]))
    p = _cli(tmp_path, "hosts", "remove", "oldname")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "named by policies: both (" in p.stderr and "pg (names only this host" in p.stderr
    assert "--update-policies" in p.stderr
    p = _cli(tmp_path, "hosts", "remove", "oldname", "--update-policies")
    assert p.returncode == 0, p.stderr
    assert "policy both: host taken out (hosts now: laptop)" in p.stderr
    assert "policy pg: disabled (it named only this host; its selection is kept)" in p.stderr
    assert "disabled policies still naming it: pg" in p.stderr
    shown = json.loads(_cli(tmp_path, "policy", "show", "pg", "--json").stdout)
    assert (shown["hosts"], shown["volumes"], shown["enabled"]) == (
        ["oldname"], ["pgdata"], False)
