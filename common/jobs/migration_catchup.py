"""The rules of a migration's catch-up rounds (the steps are in ``migration_plan``).

After the pre-copy, while the application still runs, a round backs the source up again
(``migration-catchup``: incremental, nothing stopped) and, when that snapshot differs
from the one before it, applies it to the destination with the cut-over's own sync
(``migration-sync``). What the application wrote during the pre-copy is then on the
destination before the stop, and the cut-over only carries what was written during the
last round — live migration's iterated pre-copy.

- **Only where it shortens a downtime**: with ``--cutover stop`` and a running container
  using the source at validation (``source_containers`` in the report). Otherwise the
  cut-over stops nothing, so a round would only add time: skipped, with the reason.
- **Another round** while the last one carried at least ``MORE_BYTES`` (what its backup
  had to read: a smaller delta costs the cut-over less than a round's walk of both
  volumes), less than the round before it (converging: an application that writes as fast
  as a round copies is left to the cut-over), at most ``ROUNDS`` rounds.
- **No apply** when the round's snapshot has the pre-copy's (or previous round's) tree:
  nothing changed.

The report's ``catchup.rounds`` holds each round: its backup (changed or not, files and
bytes read, new bytes stored, seconds) and its apply (files written, bytes fetched,
seconds) or why it was skipped; ``summary`` adds why no further round ran."""

from __future__ import annotations

from typing import Any

from common.db import Job
from common.db.migration_rows import Migration

#: at most this many rounds
ROUNDS = 3
#: another round only after one that carried at least this many bytes
MORE_BYTES = 64 << 20


def _report(m: Migration) -> dict[str, Any]:
    return dict(m.report or {})


def rounds(m: Migration) -> list[dict[str, Any]]:
    """The rounds done so far (their backups absorbed), in order."""
    return [dict(r) for r in (_report(m).get("catchup") or {}).get("rounds") or []]


def skipped(m: Migration) -> str | None:
    """Why this migration has no catch-up at all (None: it has)."""
    if m.cutover != "stop":
        return ("skipped: the cut-over stops nothing (--cutover none), so there is no "
                "downtime to shorten")
    running = [c for c in _report(m).get("source_containers") or []
               if c.get("state") == "running"]
    if not running:
        return ("skipped: no running container used the source at validation, so the "
                "cut-over stops nothing and nothing writes meanwhile")
    return None


def verdict(m: Migration) -> str | None:
    """None while another round is due; else why not (no catch-up, or no further round)."""
    why = skipped(m)
    if why is not None:
        return why
    done = rounds(m)
    if not done:
        return None
    last, n = done[-1], len(done)
    if not last.get("changed"):
        return f"round {n} found nothing changed since the copy before it"
    if "apply" not in last:
        return f"round {n}'s apply did not finish"
    if int(last.get("bytes_read") or 0) < MORE_BYTES:
        return (f"round {n} carried {_mib(last)} (less than {MORE_BYTES >> 20} MiB): the "
                "cut-over carries what was written since")
    if n >= 2 and int(last.get("bytes_read") or 0) >= int(done[-2].get("bytes_read") or 0):
        return (f"round {n} carried no less than round {n - 1}: the application writes as "
                "fast as a round copies, the cut-over carries the rest")
    if n >= ROUNDS:
        return f"at most {ROUNDS} rounds"
    return None


def _mib(r: dict[str, Any]) -> str:
    return f"{int(r.get('bytes_read') or 0) / (1 << 20):.1f} MiB"


def backup_due(m: Migration, n: int) -> bool:
    """Whether the step ``catchup.backup.N`` belongs to this migration (queued or due)."""
    if f"catchup.backup.{n}" in (m.steps or {}):
        return True
    return len(rounds(m)) == n - 1 and verdict(m) is None


def apply_due(m: Migration, n: int) -> bool:
    """``catchup.apply.N``: round N's snapshot changed."""
    done = rounds(m)
    return len(done) >= n and bool(done[n - 1].get("changed"))


def since(m: Migration, n: int) -> str:
    """The backup round N compares with: the pre-copy's, or the previous round's."""
    if n == 1:
        return str(_report(m).get("precopy_backup_id"))
    return str(rounds(m)[n - 2]["backup_id"])


def backup_of(m: Migration, n: int) -> str:
    return str(rounds(m)[n - 1]["backup_id"])


def absorb(m: Migration, step: str, job: Job) -> dict[str, Any]:
    """What a finished ``catchup.backup.N`` / ``catchup.apply.N`` adds to the report."""
    r = job.result or {}
    done = rounds(m)
    n = int(step.rsplit(".", 1)[1])
    if step.startswith("catchup.backup."):
        done.append({"round": n, "backup_id": job.backup_id,
                     "changed": bool(r.get("changed")),
                     "files_read": int(r.get("files_read") or 0),
                     "bytes_read": int(r.get("bytes_read") or 0),
                     "stored_bytes": int(r.get("stored_bytes") or 0),
                     "seconds": r.get("seconds")}
                    | ({} if r.get("changed") else {
                        "apply": None, "apply_skipped": "nothing changed since the "
                        "snapshot before it"}))
    else:
        done[n - 1]["apply"] = {k: r.get(k) for k in (
            "method", "files_written", "bytes_fetched", "deleted", "metadata_fixed",
            "seconds")}
    return {"catchup": {"rounds": done}}


def summary(m: Migration) -> dict[str, Any]:
    """The report's ``catchup``: the rounds, and why no (further) round ran — once the
    migration is past them."""
    past = any(s.startswith(("cutover.", "rollback.")) for s in m.steps or {})
    why = verdict(m)
    return {"rounds": rounds(m), "limits": {"rounds": ROUNDS, "more_bytes": MORE_BYTES},
            "ended": why if (past or skipped(m)) else None}

