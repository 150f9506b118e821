"""``volkeeper migrate`` embedded, as users run it: a volume renamed with
``--remove-source`` (the source removed after a pinned backup), listed and reported,
then ``volkeeper migration rollback ID`` puts the source back and removes the copy."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import pytest

from tests.integration.embedded.test_embedded import cli, volume
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration


def test_migrate_with_remove_source_then_rollback_puts_the_source_back(
        embedded_env: dict[str, str], docker_host_a: Any, tmp_path: Any) -> None:
    src = volume(docker_host_a, "cli-mig")
    (src / "dir").mkdir()
    for i in range(5):
        (src / "dir" / f"f{i}").write_bytes(os.urandom(3000 * (i + 1)))
    keep = tmp_path / "before"
    shutil.copytree(src, keep, symlinks=True)

    dry = cli(embedded_env, "migrate", "cli-mig", "--to-host", "laptop", "--to-volume",
              "cli-mig", "--dry-run", ok=False)
    assert dry.returncode == 1 and "the destination is the source" in dry.stdout

    done = json.loads(cli(embedded_env, "migrate", "cli-mig", "--to-host", "laptop",
                          "--to-volume", "cli-mig-new", "--remove-source",
                          "--json").stdout)
    assert done["state"] == "succeeded", done
    assert [p["name"] for p in done["phases"]][-1] == "finish"
    names = [v.name for v in docker_host_a.client().volumes.list()]
    assert "cli-mig" not in names and "cli-mig-new" in names
    new = docker_host_a.client().volumes.get("cli-mig-new").attrs["Mountpoint"]
    assert compare_trees(keep, new, check_root=False) == []

    listed = json.loads(cli(embedded_env, "migrations", "--json").stdout)
    assert [m["id"] for m in listed] == [done["id"]]
    assert json.loads(cli(embedded_env, "evacuations", "--json").stdout) == []
    missing = cli(embedded_env, "evacuation", done["id"], ok=False)
    assert missing.returncode != 0 and "evacuation" in missing.stderr and \
        "not found" in missing.stderr, missing.stderr
    report = cli(embedded_env, "migration", done["id"], "--md").stdout
    assert f"# Migration {done['id']}: succeeded" in report and "| finish |" in report
    text = cli(embedded_env, "migration", done["id"]).stdout
    assert f"migration {done['id']}: succeeded" in text, text
    # no container used the source: no catch-up round, and the text says why
    assert "  catch-up skipped: no running container" in text, text

    # the rollback did what was asked: exit 0 (``cli`` checks it)
    back = json.loads(cli(embedded_env, "migration", "rollback", done["id"],
                          "--json").stdout)
    assert back["state"] == "rolled_back", back
    assert back["reason"].startswith("rolled back by")
    names = [v.name for v in docker_host_a.client().volumes.list()]
    assert "cli-mig" in names and "cli-mig-new" not in names
    restored = docker_host_a.client().volumes.get("cli-mig").attrs["Mountpoint"]
    assert compare_trees(keep, restored, check_root=False) == []
