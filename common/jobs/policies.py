"""Policies as a service: create, change, delete, list and show them; run one now; preview
and apply its retention; apply a whole set declaratively (``volkeeper apply -f``).

Every change is audited (``policy.create`` …, with the actor), a refusal too. A run goes
through the same job services as a manual backup (same validation, same 409 for a busy
volume) with ``requested_by`` ``policy:NAME``. A volume several policies match is backed
up by its owner only (the first by name) and reported by the others.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.audit import LOCAL_ACTOR, record, record_beside
from common.db import Job, Policy, Volume, catalog
from common.db.models import utcnow
from common.errors import Conflict, NotFound, VolkeeperError
from common.jobs.inputs import InvalidRequest, parse
from common.jobs.operations import OperationsService
from common.jobs.policy_inputs import POLICY_FIELDS, ApplyIn, PolicyBody, PolicyIn, PolicyPatch
from common.jobs.policy_previews import backups_on, retention_groups
from common.jobs.policy_runs import RunResult, not_found, requested_by, run_policies
from common.jobs.policy_state import (
    InventoryView,
    refs_of,
    selected,
    selection_of,
    volume_claims,
)
from common.jobs.policy_views import (
    ApplyOut,
    ChangeOut,
    PolicyOut,
    PreviewOut,
    matches_of,
    policy_out,
)
from common.policies.retention import RETAINS, decide, items_from_rows
from common.policies.rules import tz_of
from common.policies.schedule import parse_tz
from common.policies.selection import Selection, check_selection

log = logging.getLogger(__name__)


class PolicyService:
    """Policies over the job services of ``ops`` (its database, settings, dispatcher)."""

    def __init__(self, ops: OperationsService) -> None:
        self.ops = ops
        self.db = ops.db

    # --- reads ---------------------------------------------------------------------------
    def list_policies(self) -> list[PolicyOut]:
        now = utcnow()
        with self.db.session() as s:
            return [policy_out(p, now) for p in s.scalars(select(Policy).order_by(Policy.name))]

    def show(self, name: str) -> PolicyOut:
        with self.db.session() as s:
            p = _get(s, name)
            return policy_out(p, matches=matches_of(s, p))

    # --- changes -------------------------------------------------------------------------
    def create(self, body: PolicyIn, *, actor: str = LOCAL_ACTOR) -> PolicyOut:
        details = body.model_dump(mode="json")
        with self._audit(actor, "policy.create", body.name, details) as s:
            if s.scalar(select(Policy).where(Policy.name == body.name)) is not None:
                raise Conflict(f"policy {body.name!r} exists",
                               f"change it with `volkeeper policy update {body.name}` or "
                               "PUT/PATCH /api/v1/policies/{name}")
            p = self._write(s, Policy(name=body.name), body)
        return policy_out(p)

    def replace(self, name: str, body: PolicyBody, *, actor: str = LOCAL_ACTOR) -> PolicyOut:
        with self._audit(actor, "policy.update", name, body.model_dump(mode="json")) as s:
            p = self._write(s, _get(s, name), body)
        return policy_out(p)

    def patch(self, name: str, patch: PolicyPatch, *, actor: str = LOCAL_ACTOR) -> PolicyOut:
        given = patch.model_dump(mode="json", exclude_unset=True)
        with self._audit(actor, "policy.update", name, given) as s:
            p = _get(s, name)
            merged = body_of(p) | given
            p = self._write(s, p, parse(PolicyBody, merged))
        return policy_out(p)

    def delete(self, name: str, *, actor: str = LOCAL_ACTOR) -> None:
        """Delete a policy (its backups stay, with their own retention no longer applied)."""
        with self._audit(actor, "policy.delete", name, {}) as s:
            s.delete(_get(s, name))

    def apply(self, body: ApplyIn, *, actor: str = LOCAL_ACTOR) -> ApplyOut:
        """Create, change and (``prune``) delete policies so the catalog holds exactly
        ``body.policies``; everything or nothing (one transaction), each change audited.
        ``dry_run``: only the plan."""
        details = {"names": [p.name for p in body.policies], "prune": body.prune,
                   "dry_run": body.dry_run}
        with self._audit(actor, "policy.apply", "", details,
                         audit_ok=not body.dry_run) as s:
            current = {p.name: p for p in s.scalars(select(Policy))}
            plan: list[ChangeOut] = []
            for want in body.policies:
                have = current.get(want.name)
                if have is None:
                    plan.append(ChangeOut(name=want.name, action="create",
                                          forgets=self._forgets(s, want)))
                    continue
                old = body_of(have)
                new = PolicyBody(**want.model_dump(exclude={"name"})).model_dump(mode="json")
                diff = {k: [old.get(k), new.get(k)] for k in POLICY_FIELDS
                        if old.get(k) != new.get(k)}
                plan.append(ChangeOut(name=want.name, action="update" if diff else "unchanged",
                                      changes=diff,
                                      forgets=self._forgets(s, want) if RETAINS & set(diff)
                                      else None))
            listed = {p.name for p in body.policies}
            for name in sorted(set(current) - listed):
                plan.append(ChangeOut(name=name, action="delete" if body.prune else
                                      "kept (not in the file; --prune deletes it)"))
            self._check_targets(s, [t for p in body.policies for t in p.targets],
                                "policies.targets")
            if not body.dry_run:
                wanted = {p.name: p for p in body.policies}
                for change in plan:
                    if change.action == "create":
                        self._write(s, Policy(name=change.name), wanted[change.name])
                    elif change.action == "update":
                        self._write(s, current[change.name], wanted[change.name])
                    elif change.action == "delete":
                        s.delete(current[change.name])
                    else:
                        continue
                    record_beside(s, actor, f"policy.{change.action}", change.name,
                                  {"via": "apply", "changes": change.changes}, "ok", same=True)
        return ApplyOut(dry_run=body.dry_run, changes=plan)

    # --- running -------------------------------------------------------------------------
    def run(self, name: str, *, actor: str = LOCAL_ACTOR,
            view: InventoryView | None = None, refuse_busy: bool = True) -> RunResult:
        """Back up every volume the policy owns now, to its first target
        (``policy_runs.run_policies`` for one policy); raises its refusal."""
        result = run_policies(self.ops, [name], actor=actor, view=view,
                              refuse_busy=refuse_busy)[name]
        if isinstance(result, VolkeeperError):
            raise result
        return result

    def retention_preview(self, name: str) -> list[PreviewOut]:
        """For each volume the policy selects and each of its targets: every backup there,
        kept or forgotten by its retention, and why. A policy without retention keeps
        everything."""
        with self.db.session() as s:
            p = _get(s, name)
            mine, claimed = selected(s, p)
            owners = {v.key: claimed.get(v.key, [name])[0] for v in mine}
            others = {o: _get(s, o) for o in set(owners.values()) - {name}}
            return retention_groups(s, selection_of(p), p.targets, p.retention,
                                    tz_of(p), owners={
                                        k: others[o] for k, o in owners.items() if o != name})

    def draft_retention_preview(self, body: PolicyBody) -> list[PreviewOut]:
        """``retention_preview`` of a policy not saved yet (the console's form)."""
        with self.db.session() as s:
            self._check_targets(s, body.targets, "targets")
            return retention_groups(s, selection_of_body(body), body.targets,
                                    body.retention, parse_tz(body.tz))

    def apply_retention(self, name: str, host: str, volume: str, target: str, *,
                        actor: str | None = None, limit: int | None = None,
                        wait: Callable[[Job], Job] | None = None) -> list[Job]:
        """Forget what the policy's retention does not keep of ``volume`` on ``target``,
        through the forget service (a pinned backup is refused there too; one in use by
        another job is left for next time), oldest first. ``limit``: at most that many
        forgets now (a repository forget takes the target's exclusive lock: the
        scheduler queues one and the next when it succeeded); ``wait``: wait for each
        before the next. Returns the forget jobs."""
        with self.db.session() as s:
            p = _get(s, name)
            if not p.retention:
                return []
            owner = _owner(s, p, host, volume)
            if owner != name:  # its rules are not the volume's (now): the owner's apply
                log.info("policy %s: retention of %s/%s on %s left to policy %s, which "
                         "backs it up", name, host, volume, target, owner)
                return []
            decisions = decide(items_from_rows(backups_on(s, host, volume, target)),
                               p.retention, tz_of(p))
        jobs: list[Job] = []
        for d in reversed(decisions):
            if d.keep or (limit is not None and len(jobs) >= limit):
                continue
            try:
                job = self.ops.forget_backup(backup_id=d.id,
                                             requested_by=actor or requested_by(name))
            except (Conflict, NotFound):
                continue
            jobs.append(wait(job) if wait else job)
        return jobs

    # --- helpers -------------------------------------------------------------------------
    def _write(self, s: Session, p: Policy, body: PolicyBody) -> Policy:
        self._check_targets(s, body.targets, "targets")
        for k, v in body.stored().items():
            setattr(p, k, v)
        p.updated_at = utcnow()
        if p.created_at is None:
            p.created_at = p.updated_at
        s.add(p)
        s.flush()
        return p

    def _forgets(self, s: Session, body: PolicyBody) -> int | None:
        """How many backups there now ``body``'s retention forgets (None: it has none, or
        its targets are unknown — the apply is refused for that anyway)."""
        if not body.retention:
            return None
        known = {t.name for t in catalog.list_targets(s)}
        if not set(body.targets) <= known:
            return None
        return sum(g.forget for g in retention_groups(
            s, selection_of_body(body), body.targets, body.retention, parse_tz(body.tz)))

    @staticmethod
    def _check_targets(s: Session, names: list[str], where: str) -> None:
        known = {t.name for t in catalog.list_targets(s)}
        unknown = [n for n in dict.fromkeys(names) if n not in known]
        if unknown:
            raise InvalidRequest([{"field": where, "problem": (
                f"unknown target(s) {', '.join(map(repr, unknown))}; register with "
                f"`volkeeper targets add NAME URL` (known: {', '.join(sorted(known)) or 'none'})"
            )}])

    @contextlib.contextmanager
    def _audit(self, actor: str, action: str, obj: str, details: dict[str, Any], *,
               audit_ok: bool = True) -> Iterator[Session]:
        """A session whose success is audited in its own transaction and whose refusal
        is audited apart (the change is rolled back)."""
        try:
            with self.db.session() as s:
                yield s
                if audit_ok:
                    record_beside(s, actor, action, obj, details, "ok", same=True)
        except IntegrityError:
            err = Conflict(f"policy {obj!r} was changed by another request at the same time",
                           "try again")
            record(self.db, actor, action, obj, details, f"error: {err.code}: {err.message}")
            raise err from None
        except VolkeeperError as e:
            record(self.db, actor, action, obj, details, f"error: {e.code}: {e.message}")
            raise


def body_of(p: Policy) -> dict[str, Any]:
    """A stored policy as the fields of ``PolicyBody`` (plain JSON values)."""
    out = policy_out(p).model_dump(mode="json")
    out["rpo"] = None if out.pop("rpo_default") else out["rpo"]
    return {k: out[k] for k in POLICY_FIELDS}


def _owner(s: Session, p: Policy, host: str, volume: str) -> str:
    """The policy whose retention applies to ``host``/``volume`` now: the first enabled
    one matching it, else ``p`` (also when the inventory no longer lists the volume)."""
    refs = refs_of(s.scalars(select(Volume).where(Volume.host == host,
                                                 Volume.name == volume)))
    return (volume_claims(s, refs, also=p).get((host, volume)) or [p.name])[0]


def selection_of_body(body: PolicyBody) -> Selection:
    return check_selection(body.volumes, body.hosts, body.selector, body.project)


def _get(s: Session, name: str) -> Policy:
    p = s.scalar(select(Policy).where(Policy.name == name))
    if p is None:
        raise not_found(name)
    return p
