"""Policy commands: ``volkeeper policy create|update|delete|list|show|run|verify|drill``,
``volkeeper apply -f FILE [--dry-run] [--prune]`` and ``volkeeper retention preview NAME``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.front import CliError, Front, connect
from cli.options import Json
from cli.policy_options import body, copies, policy_options, retention
from cli.render import emit_json, err, out, table, upcoming, when
from cli.settings import settings

policy_app = typer.Typer(help="Policies: what is backed up, when, where, how long it is "
                         "kept and how fresh it must be.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention of a policy's backups.", no_args_is_help=True)

Opt = typer.Option


@policy_app.command("create")
@policy_options
def create(name: str, given: dict[str, Any], as_json: bool) -> None:
    """Create policy NAME (errors name the bad field)."""
    if not given["schedule"]:
        raise CliError("--schedule is required", "e.g. --schedule '0 2 * * *' or @daily")
    changes = body(given) | {
        "name": name, "targets": [given["target"] or settings().default_target,
                                   *copies(given["copy_to"])],
        "retention": retention(given)}
    with connect(docker=False) as c:
        p = c.create_policy(changes)
        _done(p, "created", as_json)
        _notes(c, p, as_json, retains=True)


@policy_app.command("update")
@policy_options
def update(name: str, given: dict[str, Any], as_json: bool) -> None:
    """Change the options given of policy NAME (a --keep-* option changes that rule only;
    0 removes it)."""
    from common.policies.retention import RETAINS

    changes = body(given)
    keep = retention(given)
    target, copy_to = given["target"], given["copy_to"]
    with connect(docker=False) as c:
        if keep or target or copy_to is not None:
            current = c.policy(name)
            if keep:
                changes["retention"] = current["retention"] | keep
            if target or copy_to is not None:
                changes["targets"] = [target or current["targets"][0],
                                      *(copies(copy_to) if copy_to is not None
                                        else current["targets"][1:])]
        if not changes:
            raise CliError("nothing to change", "give the options to change, e.g. --schedule")
        p = c.update_policy(name, changes)
        _done(p, "updated", as_json)
        _notes(c, p, as_json, retains=bool(RETAINS & set(changes)))


@policy_app.command("delete")
def delete(name: str, as_json: Json = False) -> None:
    """Delete policy NAME (its backups stay)."""
    with connect(docker=False) as c:
        c.delete_policy(name)
    if as_json:  # (the API answers 204: nothing more to say)
        return emit_json({"name": name, "deleted": True})
    err().print(f"policy {name} deleted", highlight=False)


@policy_app.command("list")
def list_(as_json: Json = False) -> None:
    """List policies."""
    with connect(docker=False) as c:
        rows = c.policies()
    if as_json:
        return emit_json(rows)
    table("Policies", ["name", "selects", "schedule", "targets", "rpo", "next run"],
          [[p["name"], _selects(p), _schedule(p), ", ".join(p["targets"]), p["rpo"],
            "disabled" if not p["enabled"] else upcoming(p["next_run_at"])] for p in rows],
          flexible=("name", "selects", "schedule", "targets"))


@policy_app.command("show")
def show(name: str, as_json: Json = False) -> None:
    """Show policy NAME and the volumes it selects now."""
    with connect() as c:
        p = c.policy(name)
    if as_json:
        return emit_json(p)
    lines = [("selects", _selects(p)), ("schedule", _schedule(p)),
             ("targets", " → copies: ".join([p["targets"][0], ", ".join(p["targets"][1:])])
              if len(p["targets"]) > 1 else p["targets"][0]),
             ("format", p["format"] or "default"),
             ("retention", _retention(p["retention"])),
             ("rpo", p["rpo"] + (" (2x the interval)" if p["rpo_default"] else "")),
             ("enabled", "yes" if p["enabled"] else "no"),
             ("next run", upcoming(p["next_run_at"])),
             ("last run", when(p["last_run_at"])),
             ("verify", _cadence(p, "verify")), ("drill", _cadence(p, "drill")),
             ("consistent", _consistency(p))]
    for k, v in lines:
        out().print(f"[bold]{k:>10}[/]: {v}", highlight=False, soft_wrap=True)
    for n, m in enumerate(p.get("matches") or []):
        note = (f"  [yellow]conflict: {', '.join(m['conflict'])} (owner {m['owner']})[/]"
                if m["conflict"] else "")
        label = f"[bold]{'volumes':>10}[/]: " if n == 0 else " " * 12
        out().print(f"{label}{m['host']}/{m['volume']}{note}", highlight=False)
    if not p.get("matches"):
        out().print(f"[bold]{'volumes':>10}[/]: none match now", highlight=False)


def _retention(rules: dict[str, Any]) -> str:
    """``last 7, daily unlimited, within 2d, tag release or a,b`` (no Python lists)."""
    parts = []
    for k, v in rules.items():
        if isinstance(v, list):
            v = " or ".join(map(str, v))
        parts.append(f"{k.removeprefix('keep_')} {'unlimited' if v == -1 else v}")
    return ", ".join(parts) or "keep all"


def _consistency(p: dict[str, Any]) -> str:
    """How its backups are made consistent (labels on the volume or a container win)."""
    dbs = ", ".join(p.get("dump_databases") or [])
    parts = [f"{p['dump']} dump" + (f" of {dbs}" if dbs else "") if p.get("dump") else "",
             "stop containers" if p.get("stop_containers") else "",
             f"snapshot {p['snapshot']}" if p.get("snapshot") else "",
             f"excludes {', '.join(p['excludes'])}" if p.get("excludes") else ""]
    return "; ".join(x for x in parts if x) or "as the labels say"


def _cadence(p: dict[str, Any], kind: str) -> str:
    """``@weekly, 5% read back — next <when>``; ``-`` when the policy has no such cadence."""
    expr = p.get(f"{kind}_schedule")
    if not expr:
        return "-"
    what = expr
    if kind == "verify":
        what += (f", {p['verify_subset']:g}% read back (repository backups)"
                 if p.get("verify_subset") else ", structure check")
    nxt = p.get(f"next_{kind}_at")
    return f"{what} — next {upcoming(nxt)}" if nxt else f"{what} (disabled)"


@policy_app.command("run")
def run(name: str, as_json: Json = False) -> None:
    """Back up the volumes policy NAME selects, now (embedded: waits for the backups)."""
    from cli.render import wait_for_job

    with connect() as c:
        res = c.run_policy(name)
        if c.embedded:  # the jobs run in this process: wait for them, and what follows
            res["jobs"] = [wait_for_job(c, j["id"], quiet=True) for j in res["jobs"]]
            res["followups"] = _follow_up(c, [j for j in res["jobs"]
                                              if j["state"] == "succeeded"])
        res.setdefault("followups", [])  # with --server: the server's scheduler does them
    _show_run(name, res, as_json)


@policy_app.command("verify")
def verify(name: str, as_json: Json = False) -> None:
    """Verify the newest good backup of each volume policy NAME backs up, now, as its
    --verify-schedule would (embedded: waits for the verifications)."""
    _check(name, "verify", as_json)


@policy_app.command("drill")
def drill(name: str, as_json: Json = False) -> None:
    """Restore-drill the newest good backup of each volume policy NAME backs up, now, as
    its --drill-schedule would (embedded: waits for the drills)."""
    _check(name, "drill", as_json)


def _check(name: str, kind: str, as_json: bool) -> None:
    from cli.render import wait_for_job

    with connect() as c:
        res = c.check_policy(name, kind)
        if c.embedded:
            res["jobs"] = [wait_for_job(c, j["id"], quiet=True) for j in res["jobs"]]
    _show_run(name, res, as_json)


def _show_run(name: str, res: dict[str, Any], as_json: bool) -> None:
    """A policy run's (or check's) jobs, skips and follow-ups; exit 1 when a job failed
    (a verify or drill that found damage fails)."""
    if as_json:
        emit_json(res)
    else:
        for j in res["jobs"]:
            out().print(f"{j['host']}/{j['volume']}: {j['kind']} job {j['id']} {j['state']}"
                        + (f" ({j['error']})" if j.get("error") else ""), highlight=False,
                        soft_wrap=True)
        for s in res["skipped"]:
            out().print(f"{s['host']}/{s['volume']}: skipped: {s['reason']}",
                        highlight=False, soft_wrap=True)
        for j in res.get("followups") or []:
            what = (f"copy to {j['params'].get('destination')}" if j["kind"] == "copy"
                    else f"{j['kind']} {j['backup_id']} (retention)")
            out().print(f"{j['host']}/{j['volume']}: {what}: job {j['id']} {j['state']}"
                        + (f" ({j['error']})" if j.get("error") else ""), highlight=False,
                        soft_wrap=True)
        if not res["jobs"] and not res["skipped"]:
            err().print(f"policy {name} selects no volume now", highlight=False)
    if any(j["state"] == "failed" for j in res["jobs"]):
        raise typer.Exit(1)


def _follow_up(c: Front, done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Embedded: the copies to the policy's other targets, then its retention on every
    target, one job after the other (the jobs come back finished). A running
    ``volkeeper serve`` holds the scheduler's lease and does them instead."""
    from cli.render import wait_for_job

    queued = c.policy_followups([j["id"] for j in done]) if done else None
    return [wait_for_job(c, j["id"], quiet=True) for j in queued or []]


@retention_app.command("preview")
def preview(name: str, as_json: Json = False) -> None:
    """What policy NAME's retention keeps and forgets of each volume and target, and why."""
    with connect() as c:
        groups = c.retention_preview(name)
    if as_json:
        return emit_json(groups)
    for g in groups:
        owner = (f" (policy {g['owner']} backs it up: its retention applies, not "
                 f"{name}'s)" if g.get("owner") else "")
        if not g["backups"]:
            out().print(f"{g['host']}/{g['volume']} on {g['target']}{owner}: no backups "
                        "there yet", highlight=False, soft_wrap=True)
            continue
        table(f"{g['host']}/{g['volume']} on {g['target']}{owner}: keep {g['keep']}, "
              f"forget {g['forget']}", ["backup", "created", "decision", "why"],
              [[b["id"], when(b["created_at"]), "keep" if b["keep"] else "[red]forget[/]",
                "; ".join(b["reasons"])] for b in g["backups"]], flexible=("why",))
    if not groups:
        err().print(f"policy {name} selects no volume now", highlight=False)


def apply(
    path: Annotated[Path | None, typer.Argument(
        metavar="FILE", show_default=False, help="The file (or -f FILE).")] = None,
    file: Annotated[Path | None, Opt("-f", "--file", show_default=False,
                                     help="YAML file with a `policies:` list.")] = None,
    dry_run: Annotated[bool, Opt("--dry-run", help="Only show the plan.")] = False,
    prune: Annotated[bool, Opt(help="Delete the policies the file does not list.")] = False,
    as_json: Json = False,
) -> None:
    """Make the policies what FILE declares: shows the plan, then creates, updates (and
    with --prune deletes); nothing changes when any policy in it is invalid."""
    chosen = file or path
    if chosen is None or (file is not None and path is not None):
        raise CliError("name one file: volkeeper apply -f FILE (or apply FILE)"
                       if chosen is None else "name the file once: -f FILE or FILE")
    policies = load_policies(chosen)
    with connect(docker=False) as c:
        res = c.apply_policies({"policies": policies, "dry_run": dry_run, "prune": prune})
    if as_json:
        return emit_json(res)
    marks = {"create": "[green]+[/]", "update": "[yellow]~[/]", "delete": "[red]-[/]",
             "unchanged": "="}
    for ch in res["changes"]:
        out().print(f"{marks.get(ch['action'], ' ')} {ch['name']}: {ch['action']}",
                    highlight=False, soft_wrap=True)
        for k, (old, new) in ch["changes"].items():
            out().print(f"      {k}: {_flow(old)} → {_flow(new)}", highlight=False,
                        soft_wrap=True)
        if ch.get("forgets"):
            n = ch["forgets"]
            out().print(f"      [yellow]! its retention would forget up to {n} "
                        f"backup{'' if n == 1 else 's'} there now[/] after its next backup "
                        "(made by hand too; pin what you keep)", highlight=False,
                        soft_wrap=True)
    if dry_run:
        err().print("dry run: nothing changed", highlight=False)


def _flow(value: Any) -> str:
    """A field's value as the file spells it (YAML flow: ``{keep_last: 2}``, ``[a, b]``,
    ``null``), not Python's repr."""
    import json

    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else (
        json.dumps(value, ensure_ascii=False).replace('"', ""))


def load_policies(file: Path) -> list[dict[str, Any]]:
    """The ``policies:`` list of a YAML file (or a bare list)."""
    import yaml

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise CliError(f"cannot read {file}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise CliError(f"{file} is not valid YAML: {e}") from None
    items = data.get("policies") if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(p, dict) for p in items):
        raise CliError(f"{file} holds no list of policies",
                       "write `policies:` followed by one mapping per policy (name, "
                       "schedule, targets, …)")
    return items


def _selects(p: dict[str, Any]) -> str:
    parts = [*(f"volume {v}" for v in p["volumes"]), *(f"host {h}" for h in p["hosts"])]
    if p["selector"]:
        parts.append(p["selector"])
    if p["project"]:
        parts.append(f"project {p['project']}")
    return ", ".join(parts)


def _schedule(p: dict[str, Any]) -> str:
    return p["schedule"] + ("" if p["tz"] == "UTC" else f" {p['tz']}")


def _notes(c: Front, p: dict[str, Any], as_json: bool, *, retains: bool) -> None:
    """A note when the policy selects no volume now (a mistyped name, label or host made
    a policy that never backs anything up, and nothing said so) and (``retains``: new, or
    its retention, targets or selection changed) when its retention would forget backups
    there now — made by hand too — after its next backup."""
    if as_json or not p["enabled"]:
        return
    if not c.policy(p["name"]).get("matches"):
        err().print(f"note: policy {p['name']} selects no volume now (as far as the last "
                    "inventory knows): check the names with `volkeeper volumes`",
                    highlight=False, soft_wrap=True)
        return
    n = sum(g["forget"] for g in c.retention_preview(p["name"])) if (
        retains and p["retention"]) else 0
    if n:
        err().print(f"note: its retention would forget {n} backup{'' if n == 1 else 's'} "
                    "there now after its next backup (made by hand too; pin what you keep): "
                    f"volkeeper retention preview {p['name']}", highlight=False,
                    soft_wrap=True)


def _done(p: dict[str, Any], what: str, as_json: bool) -> None:
    if as_json:
        return emit_json(p)
    out().print(f"policy {p['name']} {what}: {_selects(p)}, {_schedule(p)} → "
                f"{', '.join(p['targets'])}, rpo {p['rpo']}", highlight=False, soft_wrap=True)
