"""``migration_views.next_steps``: what it tells the user to change."""

from __future__ import annotations

import yaml

from common.db.migration_rows import Migration
from common.jobs import migration_views


def test_same_host_compose_snippet_is_valid_yaml() -> None:
    m = Migration(id="m1", state="succeeded", source_host="a", dest_host="a",
                  source_volume="pgdata", dest_volume="pgdata-nvme", report={})
    step = migration_views.next_steps(m)[0]
    snippet = step.split("`")[1]
    assert yaml.safe_load(snippet) == {
        "volumes": {"pgdata": {"name": "pgdata-nvme", "external": True}}}
