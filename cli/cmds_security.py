"""Named API tokens with roles, and the audit log: ``volkeeper tokens create|list|revoke``,
``volkeeper audit``. Embedded they act on this machine's database (as ``cli:local-user``);
with ``--server`` they need an admin token."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.front import connect
from cli.options import Json
from cli.render import emit_json, err, out, table, when

tokens_app = typer.Typer(help="Named API tokens with roles (viewer, operator, admin).",
                         no_args_is_help=True)
Role = Annotated[str, typer.Option(
    help="viewer: read only; operator: also backups, new/empty restores, verify, drills, "
    "tags, copies; admin: everything (targets, keys, forget, prune, replace, tokens).")]


@tokens_app.command("create")
def tokens_create(name: Annotated[str, typer.Argument(metavar="NAME")], role: Role,
                  as_json: Json = False) -> None:
    """Create a token; its secret is printed this once (only its hash is kept)."""
    with connect(docker=False) as c:
        created = c.create_token(name, role)
    if as_json:
        return emit_json(created)
    err().print(f"token {created['name']!r} ({created['role']}) created; keep the secret, it "
                "is not shown again:", highlight=False)
    out().print(created["secret"], highlight=False, soft_wrap=True)


@tokens_app.command("list")
def tokens_list(as_json: Json = False) -> None:
    """Every token: name, role, when it was made and last used, revoked or not."""
    with connect(docker=False) as c:
        rows = c.tokens()
    if as_json:
        return emit_json(rows)
    table("Tokens", ["name", "role", "created", "by", "last used", "revoked"],
          [[t["name"], t["role"], when(t["created_at"]), t.get("created_by") or "-",
            when(t.get("last_used_at")), when(t.get("revoked_at"), never="-")] for t in rows],
          flexible=("name", "by"))


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(metavar="NAME")],
                  as_json: Json = False) -> None:
    """Revoke a token: it stops working at once (its row stays for the audit log)."""
    with connect(docker=False) as c:
        row = c.revoke_token(name)
    if as_json:
        return emit_json(row)
    out().print(f"token {row['name']!r} revoked", highlight=False)


def audit(
    actor: Annotated[str | None, typer.Option(help="Only this actor (a token's name).")] = None,
    action: Annotated[str | None, typer.Option(
        help="Only actions starting with this, e.g. 'target.' or 'backup.forget'.")] = None,
    since: Annotated[str | None, typer.Option(help="Only since this ISO time.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 200,
    as_json: Json = False,
) -> None:
    """The audit log: who changed what, when, and how it ended."""
    with connect(docker=False) as c:
        rows = c.audit({"actor": actor, "action": action, "since": since, "limit": limit})
    if as_json:
        return emit_json(rows)
    table("Audit log", ["when", "actor", "action", "object", "outcome"],
          [[when(r["at"]), r["actor"], r["action"], r["object"], r["outcome"]] for r in rows],
          flexible=("object", "outcome"))
