"""`volkeeper apply` tells what a new or tightened retention will forget: a policy applied
over volumes with backups (made by hand too) forgets them after its first backup, and the
plan said nothing of it. Its diff spells values as the file does, not Python's repr."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from common.db import catalog, hosts
from common.db.models import utcnow
from tests.unit.api.test_api import Env
from tests.unit.cli.test_release import _cli
from tests.unit.cli.test_release import catalog as embedded
from tests.unit.policies.test_policy_api import (  # noqa: F401
    NIGHTLY,
    _backup,
    create,
    env,
    vol,
)

URL = "/api/v1/policies/apply"


def plan(env: Env, *policies: dict[str, object]  # noqa: F811
         ) -> dict[str, dict[str, object]]:
    r = env.client.post(URL, json={"policies": list(policies), "dry_run": True})
    assert r.status_code == 200, r.text
    return {c["name"]: c for c in r.json()["changes"]}


def test_the_plan_counts_what_the_retention_would_forget(env: Env) -> None:  # noqa: F811
    ids = [_backup(env, "pg", timedelta(days=d)) for d in range(4)]
    with env.db.session() as s:
        catalog.label_backup(s, ids[3], pinned=True)
    body = NIGHTLY | {"targets": ["local"], "retention": {"keep_last": 1}}
    assert plan(env, body)["nightly"]["forgets"] == 2  # the newest kept, the pinned too
    assert plan(env, body | {"retention": {}})["nightly"]["forgets"] is None
    assert create(env, body | {"retention": {"keep_last": 5}}).status_code == 201
    changes = plan(env, body)["nightly"]
    assert changes["action"] == "update" and changes["forgets"] == 2
    same = plan(env, body | {"retention": {"keep_last": 5}})["nightly"]
    assert same["action"] == "unchanged" and same["forgets"] is None


def test_the_cli_plan_says_it_and_spells_values_as_yaml(tmp_path: Path) -> None:
    with embedded(tmp_path) as s:
        catalog.ensure_target(s, "local", (tmp_path / "backups").as_uri())
        hosts.register_host(s, "laptop", docker_version="28.2", worker_version="t")
        hosts.replace_inventory(s, "laptop", [vol("app")])
        for d in range(3):
            catalog.add_backup(s, host="laptop", volume="app", target="local",
                               format="tar.zst", key=f"k{d}", manifest_key="m",
                               checksum="0" * 64, created_at=utcnow() - timedelta(days=d))
    spec = tmp_path / "p.yaml"
    spec.write_text("policies:\n  - name: app\n    volumes: [app]\n    schedule: '@daily'\n"
                    "    targets: [local]\n    retention: {keep_last: 2}\n")
    made = _cli(tmp_path, "apply", "-f", str(spec))
    assert made.returncode == 0, made.stderr
    assert "+ app: create" in made.stdout
    assert "! its retention would forget up to 1 backup there now" in made.stdout
    spec.write_text(spec.read_text().replace("keep_last: 2", "keep_last: 1"))
    p = _cli(tmp_path, "apply", "-f", str(spec), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "retention: {keep_last: 2} → {keep_last: 1}" in p.stdout, p.stdout
    assert "! its retention would forget up to 2 backups there now" in p.stdout, p.stdout
    # the same note from `policy update` (and create), on stderr; not for other changes
    tighter = _cli(tmp_path, "policy", "update", "app", "--keep-last", "1")
    assert tighter.returncode == 0, tighter.stderr
    assert "note: its retention would forget 2 backups there now" in tighter.stderr
    other = _cli(tmp_path, "policy", "update", "app", "--rpo", "3d")
    assert other.returncode == 0 and "note:" not in other.stderr, other.stderr


def test_the_file_may_be_named_without_f(tmp_path: Path) -> None:
    """`volkeeper apply FILE` said "Missing option '-f'"."""
    spec = tmp_path / "p.yaml"
    spec.write_text("policies:\n  - name: app\n    volumes: [app]\n    schedule: '@daily'\n"
                    "    targets: [local]\n")
    p = _cli(tmp_path, "apply", str(spec), "--dry-run")
    assert p.returncode == 0 and "+ app: create" in p.stdout, p.stderr
    none = _cli(tmp_path, "apply")
    assert none.returncode == 1 and "name one file" in none.stderr, none.stderr
