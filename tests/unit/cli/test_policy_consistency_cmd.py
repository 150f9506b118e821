"""`volkeeper policy create/update` with --stop-containers, --exclude, --snapshot and
--dump, as whole embedded commands: set, changed, unset with '', a bad mix refused naming
the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.cli.test_release import _cli


def policy(home: Path, *args: str) -> dict[str, Any]:
    p = _cli(home, "policy", *args, "--json")
    assert p.returncode == 0, p.stderr
    out: dict[str, Any] = json.loads(p.stdout)
    return out


def test_the_options_set_change_and_unset_the_fields(tmp_path: Path) -> None:
    p = policy(tmp_path, "create", "app", "--volume", "app", "--schedule", "@daily",
               "--stop-containers", "--exclude", "cache/**", "--exclude", "*.tmp",
               "--snapshot", "auto")
    assert (p["stop_containers"], p["excludes"], p["snapshot"], p["dump"]) == (
        True, ["cache/**", "*.tmp"], "auto", None)
    bad = _cli(tmp_path, "policy", "update", "app", "--dump", "postgres")
    assert bad.returncode != 0 and "dump" in bad.stderr and "Traceback" not in bad.stderr
    p = policy(tmp_path, "update", "app", "--no-stop-containers", "--snapshot", "",
               "--dump", "postgres", "--exclude", "")
    assert (p["stop_containers"], p["excludes"], p["snapshot"], p["dump"]) == (
        False, [], None, "postgres")
    p = policy(tmp_path, "update", "app", "--dump", "")
    assert p["dump"] is None


def test_dump_database_is_set_shown_and_emptied(tmp_path: Path) -> None:
    p = policy(tmp_path, "create", "db", "--volume", "pgdata", "--schedule", "@daily",
               "--dump", "postgres", "--dump-database", "shop", "--dump-database", "crm,shop")
    assert (p["dump"], p["dump_databases"]) == ("postgres", ["shop", "crm"])
    shown = _cli(tmp_path, "policy", "show", "db")
    assert shown.returncode == 0, shown.stderr
    assert "postgres dump of shop, crm" in shown.stdout
    listed = policy(tmp_path, "list")
    assert listed[0]["dump_databases"] == ["shop", "crm"]
    bad = _cli(tmp_path, "policy", "update", "db", "--dump", "redis")
    assert bad.returncode != 0 and "dump_databases" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    p = policy(tmp_path, "update", "db", "--dump-database", "")
    assert (p["dump"], p["dump_databases"]) == ("postgres", [])
