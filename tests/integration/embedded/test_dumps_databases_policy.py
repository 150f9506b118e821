"""A policy's ``dump_databases`` on a real PostgreSQL (the fixtures of
``test_dumps_databases``), as a user runs it (embedded ``volkeeper``): ``policy create
--dump postgres --dump-database shop`` and ``policy run`` back up the one database ``shop``
alone (a per-database dump, not ``pg_dumpall``); the backup's dumps are kept on its catalog
row, so its copy on another target (``volkeeper copy``) lists them too, and the copy loads
under a new name beside the original, equal to it at the dump's snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.embedded.test_dumps import Pg, run
from tests.integration.embedded.test_dumps_databases import databases, pg
from tests.integration.embedded.test_embedded import cli

pytestmark = pytest.mark.integration
__all__ = ["pg"]  # the module's PostgreSQL (shop written to all the time, crm still)


def listed(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    return list(json.loads(cli(env, "backups", *args, "--json").stdout))


def test_a_policy_dumps_its_named_database_alone_and_a_copy_keeps_the_dumps(
        pg: Pg, embedded_env: dict[str, str], tmp_path: Path) -> None:
    p = run(embedded_env, "policy", "create", "shopdb", "--volume", pg.volume,
            "--schedule", "@daily", "--dump", "postgres", "--dump-database", "shop")
    assert (p["dump"], p["dump_databases"]) == ("postgres", ["shop"])
    [job] = run(embedded_env, "policy", "run", "shopdb")["jobs"]
    assert job["state"] == "succeeded", job["error"]
    assert job["params"]["dump_databases"] == ["shop"]
    name = pg.container.name
    path = f".volkeeper-dumps/postgres-{name}@shop.pgdump"
    assert [(d["database"], d["path"]) for d in job["result"]["dumps"]] == [("shop", path)]
    held = [{"kind": "postgres", "container": name, "database": "shop", "path": path}]
    [mine] = [b for b in listed(embedded_env, "--volume", pg.volume)
              if b["id"] == job["backup_id"]]
    assert mine["dumps"] == held

    (tmp_path / "far").mkdir()
    cli(embedded_env, "targets", "add", "far", f"file://{tmp_path / 'far'}")
    copied = run(embedded_env, "copy", job["backup_id"], "--to", "far")
    assert copied["state"] == "succeeded", copied["error"]
    [copy] = listed(embedded_env, "--target", "far")
    assert copy["id"] == copied["result"]["copy_backup_id"] and copy["dumps"] == held
    done = run(embedded_env, "restore", copy["id"], "--dump-into", name,
               "--database", "shop_from_far")
    assert done["state"] == "succeeded", done["error"]
    assert "shop_from_far" in databases(pg.container)
    upto = int(pg.sql("SELECT max(id) FROM orders", "shop_from_far"))
    digest = ("SELECT count(*) || ':' || md5(string_agg(id || note || at, ',' ORDER BY id))"
              f" FROM orders WHERE id <= {upto}")
    assert pg.sql(digest, "shop_from_far") == pg.sql(digest, "shop")
