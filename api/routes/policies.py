"""Policies: what is backed up, when, where, how long it is kept, how fresh it must be.
Viewers read them and preview retention; operators run one (or its verify or drill) now;
admins change them."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Admin, Operator, State, Viewer
from common.jobs.policies import PolicyService
from common.jobs.policy_checks import run_check
from common.jobs.policy_inputs import ApplyIn, PolicyBody, PolicyIn, PolicyPatch
from common.jobs.policy_previews import SchedulePreviewOut, schedule_preview
from common.jobs.policy_views import ApplyOut, PolicyOut, PreviewOut, RunOut
from common.jobs.views import job_out

router = APIRouter(prefix="/policies", tags=["policies"])


def _service(state: State) -> PolicyService:
    return PolicyService(state.service)


@router.get("", response_model=list[PolicyOut])
def list_policies(state: State, _user: Viewer) -> list[PolicyOut]:
    return _service(state).list_policies()


@router.post("", response_model=PolicyOut, status_code=201)
def create_policy(body: PolicyIn, state: State, user: Admin) -> PolicyOut:
    """A new policy. 422 names the bad field (schedule, tz, targets, retention, rpo …)."""
    return _service(state).create(body, actor=user.name)


@router.post("/apply", response_model=ApplyOut)
def apply_policies(body: ApplyIn, state: State, user: Admin) -> ApplyOut:
    """Make the policies exactly these (``prune``: delete the ones not listed) in one
    transaction; ``dry_run``: only the plan (``volkeeper apply -f``)."""
    return _service(state).apply(body, actor=user.name)


@router.get("/preview-schedule", response_model=SchedulePreviewOut)
def preview_schedule(_user: Viewer, schedule: str, tz: str = "UTC", count: int = 5,
                     jitter_seconds: int = 0, policy: str = "") -> SchedulePreviewOut:
    """The next ``count`` (1 to 50) runs of a schedule in a time zone, as the scheduler
    would start them (with ``policy`` and ``jitter_seconds``: that policy's jitter). 422
    names ``schedule``, ``tz``, ``count`` or ``jitter_seconds`` (0 to 86400)."""
    return schedule_preview(schedule, tz, count, jitter_seconds=jitter_seconds,
                            policy=policy)


@router.post("/preview-retention", response_model=list[PreviewOut])
def preview_retention(body: PolicyBody, state: State, _user: Viewer) -> list[PreviewOut]:
    """What a policy not saved yet would keep and forget (its selection, targets and
    retention against the catalog now); nothing is changed."""
    return _service(state).draft_retention_preview(body)


@router.get("/{name}", response_model=PolicyOut)
def show_policy(name: str, state: State, _user: Viewer) -> PolicyOut:
    """One policy with the volumes it selects now (and conflicts with other policies)."""
    return _service(state).show(name)


@router.put("/{name}", response_model=PolicyOut)
def replace_policy(name: str, body: PolicyBody, state: State, user: Admin) -> PolicyOut:
    return _service(state).replace(name, body, actor=user.name)


@router.patch("/{name}", response_model=PolicyOut)
def patch_policy(name: str, body: PolicyPatch, state: State, user: Admin) -> PolicyOut:
    """Change the fields given; the result is checked as a whole."""
    return _service(state).patch(name, body, actor=user.name)


@router.delete("/{name}", status_code=204)
def delete_policy(name: str, state: State, user: Admin) -> Response:
    """Delete a policy; its backups stay."""
    _service(state).delete(name, actor=user.name)
    return Response(status_code=204)


@router.post("/{name}/run", response_model=RunOut, status_code=202)
def run_policy(name: str, state: State, user: Operator) -> RunOut:
    """Back up the volumes the policy owns now (409 when every one is busy)."""
    result = _service(state).run(name, actor=user.name)
    return RunOut(policy=result.policy, jobs=[job_out(j, state.bus) for j in result.jobs],
                  skipped=result.skipped)


@router.post("/{name}/verify", response_model=RunOut, status_code=202)
def verify_policy(name: str, state: State, user: Operator) -> RunOut:
    """Verify the newest good backup of each volume the policy owns now, as its
    ``verify_schedule`` would (a ``verify_subset`` read-back of repository backups);
    409 when every one is busy."""
    return _check(state, name, "verify", user.name)


@router.post("/{name}/drill", response_model=RunOut, status_code=202)
def drill_policy(name: str, state: State, user: Operator) -> RunOut:
    """Restore drill of the newest good backup of each volume the policy owns, now;
    409 when every one is busy."""
    return _check(state, name, "drill", user.name)


def _check(state: State, name: str, kind: str, actor: str) -> RunOut:
    result = run_check(_service(state), name, kind, actor=actor, refuse_busy=True)
    return RunOut(policy=result.policy, jobs=[job_out(j, state.bus) for j in result.jobs],
                  skipped=result.skipped)


@router.get("/{name}/retention-preview", response_model=list[PreviewOut])
def retention_preview(name: str, state: State, _user: Viewer) -> list[PreviewOut]:
    """Per selected volume and target: every backup, kept or forgotten, and why."""
    return _service(state).retention_preview(name)
