"""A request on a target's repository (``/targets/{name}/…`` in the API, ``volkeeper
repo …`` in the CLI) made into its job: which request model each action takes and what
the job's parameters are. Both fronts go through here, so they queue the same job."""

from __future__ import annotations

from typing import Any

from common.db import Job
from common.jobs.inputs import (
    KeyAddIn,
    PruneIn,
    RepairIn,
    SnapshotsIn,
    TargetJobIn,
    TargetMigrateIn,
)
from common.jobs.operations import OperationsService

#: the request model of each action (the others take a bare ``TargetJobIn``)
MODELS: dict[str, type[TargetJobIn]] = {
    "prune": PruneIn, "repair": RepairIn, "snapshots": SnapshotsIn, "keys": KeyAddIn,
    "migrate": TargetMigrateIn}


def model_of(action: str) -> type[TargetJobIn]:
    return MODELS.get(action, TargetJobIn)


def queue(service: OperationsService, action: str, target: str, body: TargetJobIn,
          requested_by: str) -> Job:
    """Queue ``action`` (prune, repair, stats, snapshots, unlock, keys, keys/list,
    migrate) on ``target`` with the request ``body`` (of ``model_of(action)``)."""
    if isinstance(body, TargetMigrateIn):
        return service.migrate_target(
            source=target, destination=body.destination, volumes=body.volumes,
            delete_source=body.delete_source, host=body.host, requested_by=requested_by)
    kwargs: dict[str, Any] = {}
    if isinstance(body, PruneIn):
        kwargs["params"] = {"dry_run": body.dry_run}
    elif isinstance(body, RepairIn):
        kwargs["params"] = {"dry_run": body.dry_run, "read_data": body.read_data,
                            "forget_broken": body.forget_broken}
    elif isinstance(body, SnapshotsIn):
        kwargs["params"], kwargs["exclusive"] = {"adopt": body.adopt}, body.adopt
    elif isinstance(body, KeyAddIn):
        kwargs["params"] = {"action": "add"}
        kwargs["secrets"] = {"new_password": body.new_password}
    elif action == "keys/list":
        kwargs["params"] = {"action": "list"}
    kind = "keys" if action.startswith("keys") else action
    return service.target_job(kind, target=target, host=body.host,
                              requested_by=requested_by, **kwargs)


def remove_key(service: OperationsService, target: str, key_id: str, host: str | None,
               requested_by: str) -> Job:
    return service.target_job("keys", target=target, host=host, requested_by=requested_by,
                              params={"action": "remove", "key_id": key_id})
