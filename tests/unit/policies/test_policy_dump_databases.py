"""A policy's ``dump_databases``: checked as a backup request's (each a database name), only
with a dump kind that dumps one database alone (422 naming the field otherwise), stored,
shown, patched and carried into each backup job the policy queues; at the worker the
container's ``volkeeper.dump-database`` label wins over them."""

from __future__ import annotations

import pytest

from common.hooks.dumps import dumps_for
from common.jobs.policy_runs import run_policies
from common.jobs.policy_state import inventory_view
from tests.unit.api.test_api import Env, error
from tests.unit.hooks.test_dumps import ctr, vol
from tests.unit.policies.test_policy_consistency import create, params
from tests.unit.policies.test_policy_consistency import env as consistency_env

env = consistency_env


def test_stored_shown_patched_and_queued(env: Env) -> None:
    r = create(env, "db", ["db"], dump="postgres", dump_databases=["shop", "crm, shop"])
    assert r.status_code == 201, r.text
    assert r.json()["dump_databases"] == ["shop", "crm"]
    assert env.client.get("/api/v1/policies/db").json()["dump_databases"] == ["shop", "crm"]
    assert create(env, "plain", ["plain"]).json()["dump_databases"] == []
    ops = env.client.app.state.volkeeper.service  # type: ignore[attr-defined]
    with env.db.session() as s:
        view = inventory_view(s)
    out = run_policies(ops, ["db", "plain"], actor="scheduler", view=view, refuse_busy=False)
    assert params(out["db"])["db"] == {"format": ops.settings.default_format,
                                       "policy": "db", "dump": "postgres",
                                       "dump_databases": ["shop", "crm"]}
    assert "dump_databases" not in params(out["plain"])["plain"]
    r = env.client.patch("/api/v1/policies/db", json={"dump_databases": ["crm"]})
    assert r.status_code == 200 and r.json()["dump_databases"] == ["crm"], r.text
    r = env.client.patch("/api/v1/policies/db", json={"dump": None})
    assert r.status_code == 422, r.text
    said = error(r)["message"] + " " + error(r)["hint"]
    assert "dump_databases" in said and "no dump: set dump to postgres" in said, said


@pytest.mark.parametrize(("fields", "words"), [
    ({"dump_databases": ["shop"]}, "no dump: set dump to postgres, mysql or mariadb"),
    ({"dump": "redis", "dump_databases": ["shop"]}, "a redis dump holds the whole server"),
    ({"dump": "postgres", "dump_databases": ["a b"]}, "'a b' is not a database name"),
])
def test_refused_naming_the_field(env: Env, fields: dict[str, object],
                                  words: str) -> None:
    r = create(env, "db", ["db"], **fields)
    assert r.status_code == 422, r.text
    body = error(r)
    assert body["fields"][0]["field"] == "dump_databases" and words in body["hint"], body
    assert env.client.get("/api/v1/policies").json() == []


def test_the_containers_label_wins_over_the_policys_databases() -> None:
    own = ctr("db", **{"volkeeper_dump": "postgres", "volkeeper_dump-database": "crm"})
    assert [s.database for s in dumps_for(vol(own), None, ["shop"], "postgres")] == ["crm"]
    bare = ctr("db", **{"volkeeper_dump": "postgres"})
    assert [s.database for s in dumps_for(vol(bare), None, ["shop"], "postgres")] == ["shop"]
    # unlabelled: the policy's kind dumps the one running container, its databases
    assert [s.database for s in dumps_for(vol(ctr("db")), "postgres", ["shop"], "postgres")
            ] == ["shop"]
    # a container labelled another kind dumps its whole server
    redis = ctr("cache", **{"volkeeper_dump": "redis"})
    assert [s.database for s in dumps_for(vol(redis), None, ["shop"], "postgres")] == [None]
    # a manual backup's databases still win over the label
    assert [s.database for s in dumps_for(vol(own), None, ["shop"])] == ["shop"]


def test_run_now_queues_them(env: Env) -> None:
    assert create(env, "db", ["db"], dump="mariadb", dump_databases=["crm"]).status_code == 201
    r = env.client.post("/api/v1/policies/db/run")
    assert r.status_code in (200, 202), r.text
    [job] = r.json()["jobs"]
    assert job["params"]["dump_databases"] == ["crm"] and job["params"]["policy"] == "db"
