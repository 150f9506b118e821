"""``volkeeper policy verify|drill NAME`` run a policy's checks now, on both fronts: the
newest good backup of its volume is verified (the policy's subset) and restore-drilled,
the jobs requested by ``policy:NAME`` succeed; with ``--server`` the same commands queue
them on the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.policies.test_policy_cli import js

pytestmark = pytest.mark.integration


def test_policy_verify_and_drill_run_now_embedded_and_with_server(
        embedded_env: dict[str, str], docker_host_a: Any, fresh_volume_name: str,
        tmp_path: Path) -> None:
    env = embedded_env
    docker_host_a.client().volumes.create(fresh_volume_name)
    mount = Path(docker_host_a.client().volumes.get(fresh_volume_name).attrs["Mountpoint"])
    for k in range(5):
        (mount / f"f{k}.bin").write_bytes(bytes([k]) * 30_000)
    js(env, "policy", "create", "now", "--volume", fresh_volume_name, "--schedule",
       "@daily", "--format", "repo", "--verify-subset", "50")
    [backup] = js(env, "policy", "run", "now")["jobs"]
    assert backup["state"] == "succeeded", backup
    verify = js(env, "policy", "verify", "now")
    [v] = verify["jobs"]
    assert (v["kind"], v["state"], v["requested_by"]) == ("verify", "succeeded", "policy:now")
    assert v["params"]["subset_percent"] == 50 and v["backup_id"] == backup["result"][
        "backup_id"]
    [d] = js(env, "policy", "drill", "now")["jobs"]
    assert (d["kind"], d["state"], d["backup_id"]) == ("drill", "succeeded", v["backup_id"])

    from tests.fixtures.embedded import serving

    with serving(env, tmp_path / "serve.log") as url:
        remote = env | {"VOLKEEPER_SERVER": url}
        [queued] = js(remote, "policy", "drill", "now")["jobs"]
        assert queued["kind"] == "drill" and queued["requested_by"] == "policy:now"
        done = js(remote, "job", queued["id"], "--follow")
        assert done["state"] == "succeeded", done
        ghost = js_fail(remote, "policy", "verify", "ghost")
        assert "ghost" in ghost and "not found" in ghost.lower()


def js_fail(env: dict[str, str], *args: str) -> str:
    from tests.integration.policies.test_policy_cli import cli

    p = cli(env, *args, ok=False)
    assert p.returncode != 0
    return p.stderr + p.stdout
