"""What a migration looks like to users: its view (phases computed from its child jobs),
the plan a dry run shows, and the report as Markdown."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from common.db import Job
from common.db.migration_rows import Migration
from common.jobs import migration_catchup
from common.jobs.migration_plan import FORWARD, ROLLBACK, carried, ran_two, span

if TYPE_CHECKING:
    from common.jobs.migration_inputs import MigrationIn

PHASES = ("pre-copy", "catch-up", "cut-over", "verify", "finish", "rollback")
#: the step names of each phase (``migration_flow``)
STEP_PHASE = {s.name: s.phase for s in (*FORWARD, *ROLLBACK)}
#: the result field that says how many bytes a child job moved
_BYTES = ("bytes_fetched", "bytes_restored", "stored_bytes")


def plan(body: MigrationIn, host: str, to_volume: str, via: str,
         running: list[str] | None = None) -> str:
    dest = f"{body.to_host}/{to_volume} (driver {body.driver}" + (
        ", " + ", ".join(f"{k}={v}" for k, v in sorted(body.driver_opts.items()))
        if body.driver_opts else "") + ")"
    stop = ("stop the containers using it, " if body.cutover == "stop" else "")
    # the catch-up rounds' rule (``migration_catchup.skipped``), from the validation
    again = ("copy again what it wrote meanwhile (catch-up rounds, up to "
             f"{migration_catchup.ROUNDS}); " if body.cutover == "stop" and running else "")
    return (f"copy {host}/{body.volume} to {dest} through target {via} while it runs; "
            f"{again}then {stop}copy what changed, verify the destination against the final "
            "snapshot" + (", and remove the source (after a pinned backup)"
                          if body.remove_source else "; the source is kept"))


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _job_bytes(job: Job) -> int:
    r = job.result or {}
    return next((int(r[k]) for k in _BYTES if isinstance(r.get(k), int)), 0)


def _rows(s: Session, m: Migration) -> list[tuple[str, Job]]:
    """Each step with its job; the verify also while the cut-over's apply job runs it
    (``migration_plan.carried``: the coordinator names it once that job has ended)."""
    rows = [(step, j) for step, jid in (m.steps or {}).items()
            if (j := s.get(Job, jid)) is not None]
    named = {step for step, _ in rows}
    for step, j in list(rows):
        later = carried(step, j)
        if later is not None and later not in named:
            rows.append((later, j))
    return rows


def phases(s: Session, m: Migration) -> list[dict[str, Any]]:
    rep = m.report or {}
    out: list[dict[str, Any]] = [{
        "name": "validate", "state": "succeeded", "started_at": _iso(m.created_at),
        "finished_at": rep.get("validated_at"), "bytes": 0, "jobs": []}]
    rows = _rows(s, m)
    for phase in PHASES:
        found = [(step, j, span(step, j)) for step, j in rows
                 if STEP_PHASE.get(step, "rollback") == phase]
        if not found:
            continue
        states = [st for _, _, (st, _, _) in found]
        state = ("running" if any(x in ("queued", "running") for x in states) else
                 "failed" if any(x == "failed" for x in states) else
                 "cancelled" if any(x == "cancelled" for x in states) else "succeeded")
        starts = [began for _, _, (_, began, _) in found if began is not None]
        ends = [end for _, _, (_, _, end) in found if end is not None]
        out.append({
            "name": phase, "state": state, "started_at": _iso(min(starts)) if starts else None,
            "finished_at": _iso(max(ends)) if state != "running" and ends else None,
            # a job that ran two steps counts its bytes in the first
            "bytes": sum(_job_bytes(j) for step, j, _ in found
                         if not (step == "verify" and ran_two(j))),
            "jobs": [{"step": step, "job_id": j.id, "kind": j.kind, "host": j.host,
                      "state": st, "error": j.error if st == str(j.state) else None,
                      "started_at": _iso(began), "finished_at": _iso(end),
                      # the running one's last progress (live: GET /jobs/{id}/events)
                      **({"progress": j.progress} if st in ("queued", "running") else {})}
                     for step, j, (st, began, end) in found]})
    return out


def view(s: Session, m: Migration) -> dict[str, Any]:
    rep = dict(m.report or {})
    rep.pop("absorbed", None)
    rep.pop("waiting", None)
    rep["catchup"] = migration_catchup.summary(m)
    return {
        "id": m.id, "state": m.state, "requested_by": m.requested_by,
        "source": {"host": m.source_host, "volume": m.source_volume},
        "destination": {"host": m.dest_host, "volume": m.dest_volume, "driver": m.driver,
                        "driver_opts": dict(m.driver_opts or {})},
        "via": m.via, "cutover": m.cutover, "remove_source": m.remove_source,
        "phases": phases(s, m), "downtime_seconds": m.downtime_seconds,
        "verify_outcome": m.verify_outcome, "reason": m.reason,
        "cancel_requested_by": m.cancel_requested_by,
        "rollback_requested_by": m.rollback_requested_by,
        "created_at": _iso(m.created_at), "started_at": _iso(m.started_at),
        "finished_at": _iso(m.finished_at), "report": rep,
        "next_steps": next_steps(m)}


def next_steps(m: Migration) -> list[str]:
    """What the user changes so the application uses the new volume (or, rolled back on
    request, where what the destination held is kept)."""
    kept_in = (m.report or {}).get("destination_backup_id")
    left_in = (m.report or {}).get("destination_files_left_in")
    if m.state != "succeeded":
        return ([f"the destination {m.dest_host}/{m.dest_volume} as it was before the "
                 f"rollback is kept in pinned backup {kept_in} (tag migration-rollback): "
                 f"`volkeeper restore {kept_in} --into NAME` to get back what was written "
                 "there"] if kept_in else []) + \
            ([f"the destination volume was removed but its device directory {left_in} on "
              f"host {m.dest_host} still holds the copied files: empty it before "
              "migrating there again"] if left_in else [])
    out = []
    stopped = [c.get("name", "?") for c in (m.report or {}).get("containers_stopped") or []]
    if m.dest_host != m.source_host:
        out.append(f"run the application on host {m.dest_host} with volume "
                   f"{m.dest_volume!r} (in a Compose file: deploy it there; declare the "
                   "volume `external: true` or with the same driver options)")
    else:
        out.append(f"point the application at volume {m.dest_volume!r} (in a Compose "
                   f"file: `volumes: {{{m.source_volume}: {{name: {m.dest_volume}, "
                   "external: true}}`)")
    recreated = [c.get("name", "?") for c in (m.report or {}).get("containers_recreated")
                 or []]
    kept = (f"as NAME-pre-migration-{m.id}" if m.dest_host == m.source_host
            else f"on host {m.source_host}")
    if recreated:
        out.append(f"containers {', '.join(recreated)} were recreated on volume "
                   f"{m.dest_volume!r} on host {m.dest_host} and started (the old ones are "
                   f"kept, stopped, {kept}: remove them once all is well)")
    for left in (m.report or {}).get("containers_left") or []:
        out.append(f"container {left.get('name')} was not recreated: {left.get('reason')}")
    if not recreated and stopped:
        out.append(f"containers {', '.join(stopped)} were stopped for the cut-over and are "
                   "still stopped on the source; recreate them on the new volume (or "
                   f"`volkeeper migration rollback {m.id}` to go back)")
    return out


def markdown(v: dict[str, Any]) -> str:
    """The report as a readable page."""
    src, dst = v["source"], v["destination"]
    lines = [f"# Migration {v['id']}: {v['state']}", "",
             f"- source: `{src['host']}/{src['volume']}`",
             f"- destination: `{dst['host']}/{dst['volume']}` (driver `{dst['driver']}`"
             + "".join(f", `{k}={val}`" for k, val in sorted(dst["driver_opts"].items()))
             + ")",
             f"- via target: `{v['via']}`, cut-over: `{v['cutover']}`, remove source: "
             f"{'yes' if v['remove_source'] else 'no'}",
             f"- requested by: {v['requested_by'] or '-'}, created {v['created_at']}, "
             f"finished {v['finished_at'] or '-'}",
             f"- downtime: {_secs(v['downtime_seconds'])}, verify: "
             f"{v['verify_outcome'] or '-'}",
             f"- catch-up: {catchup_text(v['report']['catchup'])}"]
    if v["reason"]:
        lines.append(f"- reason: {v['reason']}")
    lines += ["", "## Phases", "", "| phase | state | started | finished | bytes | jobs |",
              "| --- | --- | --- | --- | --- | --- |"]
    for p in v["phases"]:
        jobs = ", ".join(f"{j['step']} `{j['job_id']}` ({j['state']})" for j in p["jobs"])
        lines.append(f"| {p['name']} | {p['state']} | {p['started_at'] or '-'} | "
                     f"{p['finished_at'] or '-'} | {p['bytes']} | {jobs or '-'} |")
    lines += ["", "## Checks", ""]
    for c in v["report"].get("checks") or []:
        lines.append(f"- {'ok' if c['ok'] else 'FAILED'} {c['name']}: {c['detail']}")
    if v["next_steps"]:
        lines += ["", "## Next steps", ""] + [f"- {s}" for s in v["next_steps"]]
    return "\n".join(lines) + "\n"


def catchup_text(c: dict[str, Any]) -> str:
    """The catch-up rounds in one line (the Markdown report): per round what its backup
    read (the files whose stat changed, whole) and what its apply wrote."""
    parts = []
    for r in c.get("rounds") or []:
        done = r.get("apply")
        mib = int(r.get("bytes_read") or 0) / (1 << 20)
        parts.append(f"round {r['round']}: {r['files_read']} files / {mib:.1f} MiB read, "
                     + (f"applied ({done.get('files_written')} files, "
                        f"{int(done.get('bytes_fetched') or 0)} bytes fetched)" if done
                        else f"apply skipped ({r['apply_skipped']})" if "apply_skipped" in r
                        else "apply not done"))
    if c.get("ended"):
        parts.append(str(c["ended"]))
    return "; ".join(parts) or "-"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"
