"""Which backups a policy keeps: restic's ``forget --keep-*`` rules over the backups of one
volume on one target, with a reason for every decision.

The rules (each optional; a count of -1 means unlimited):

- ``keep_last N``: the N newest backups.
- ``keep_hourly/daily/weekly/monthly/yearly N``: going from the newest backup back, the
  newest backup of each of the last N hours (days, ISO weeks, months, years) that have
  one, in the policy's time zone. When fewer periods have a backup than N asks for, the
  oldest backup is kept as well (as restic does).
- ``keep_within DURATION``: every backup newer than DURATION before the newest backup (not
  before now: a volume that stopped being backed up keeps its history).
- ``keep_tag [TAG, "A,B"]``: every backup carrying a tag (or all tags of a comma list).

And volkeeper's own guarantees, whatever the rules say:

- a *pinned* backup is never forgotten;
- the *newest good* backup (a regular backup not found damaged) is never forgotten;
- *safety* snapshots (what a replace-restore overwrote) are not regular backups: they are
  neither counted nor forgotten here (they expire on their own);
- a *damaged* backup fills no slot of keep_last or the periods (it would hold the slot of a
  good one); keep_within and keep_tag still keep it.

A retention that keeps nothing (no rule, or every count 0) is refused with an error naming
the field: a policy never means "delete every backup".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from common.policies.schedule import format_duration, parse_duration

PERIODS = ("hourly", "daily", "weekly", "monthly", "yearly")
COUNT_FIELDS = ("keep_last", *(f"keep_{p}" for p in PERIODS))
FIELDS = (*COUNT_FIELDS, "keep_within", "keep_tag")
#: a policy's fields whose change changes what its retention forgets (the plan of
#: ``volkeeper apply`` and ``policy update`` count it again)
RETAINS = frozenset({"retention", "targets", "volumes", "hosts", "selector", "project",
                     "tz"})
_PERIOD_NAMES = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month",
                 "yearly": "year"}


class RetentionError(ValueError):
    """A retention that cannot be applied; ``field`` names the offending setting."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class Retention:
    """Validated rules (``check_retention`` builds one from a plain mapping)."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: timedelta | None = None
    keep_tag: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The plain form stored with a policy (only the rules that are set)."""
        out: dict[str, Any] = {f: getattr(self, f) for f in COUNT_FIELDS if getattr(self, f)}
        if self.keep_within is not None:
            out["keep_within"] = format_duration(self.keep_within)
        if self.keep_tag:
            out["keep_tag"] = list(self.keep_tag)
        return out


@dataclass(frozen=True)
class Item:
    """One backup as retention sees it."""

    id: str
    created_at: datetime
    tags: Sequence[str] = ()
    pinned: bool = False
    kind: str = "backup"  # "backup" | "safety"
    damaged: bool = False


@dataclass
class Decision:
    id: str
    keep: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "keep": self.keep, "reasons": self.reasons}


def check_retention(raw: dict[str, Any] | Retention) -> Retention:
    """Validated rules from ``{"keep_daily": 7, "keep_within": "2d", …}``. Raises
    ``RetentionError`` naming the field: an unknown one, a count below -1, a bad duration,
    or rules that keep nothing."""
    if isinstance(raw, Retention):
        rules = raw
    else:
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:
            raise RetentionError(unknown[0], f"unknown retention rule; use {', '.join(FIELDS)}")
        counts: dict[str, int] = {}
        for name in COUNT_FIELDS:
            value = raw.get(name)
            if value is None:
                continue
            if value == "unlimited":
                value = -1
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise RetentionError(name, f"must be a count of 0 or more (or -1 for "
                                     f"unlimited), not {value!r}")
            counts[name] = value
        within = raw.get("keep_within")
        within_td = None
        if within not in (None, ""):
            try:
                within_td = (within if isinstance(within, timedelta)
                             else parse_duration(str(within)))
            except ValueError as e:
                raise RetentionError("keep_within", str(e)) from None
        tags = raw.get("keep_tag") or []
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list | tuple) or not all(
                isinstance(t, str) and t.strip(" ,") for t in tags):
            raise RetentionError("keep_tag", "must be a list of tags (a comma list means "
                                 "all of those tags)")
        rules = Retention(**counts, keep_within=within_td,
                          keep_tag=tuple(t.strip() for t in tags))
    if not any(getattr(rules, f) for f in COUNT_FIELDS) and rules.keep_within is None \
            and not rules.keep_tag:
        set_to_zero = [f for f in COUNT_FIELDS
                       if not isinstance(raw, Retention) and f in raw]
        where = set_to_zero[0] if set_to_zero else "retention"
        raise RetentionError(where, "these rules keep no backup at all; set at least one of "
                             "keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, "
                             "keep_yearly (above 0), keep_within or keep_tag")
    return rules


def _bucket(period: str, tz: ZoneInfo) -> Callable[[datetime], tuple[int, ...]]:
    def key(t: datetime) -> tuple[int, ...]:
        local = t.astimezone(tz)
        if period == "hourly":
            return (local.year, local.month, local.day, local.hour)
        if period == "daily":
            return (local.year, local.month, local.day)
        if period == "weekly":
            iso = local.isocalendar()
            return (iso.year, iso.week)
        if period == "monthly":
            return (local.year, local.month)
        return (local.year,)

    return key


def decide(items: Iterable[Item], rules: Retention | dict[str, Any],
           tz: ZoneInfo | None = None) -> list[Decision]:
    """Keep or forget each backup of one volume on one target, newest first, with the
    reasons. Pure: the same input gives the same answer."""
    rules = check_retention(rules)
    tz = tz or ZoneInfo("UTC")
    ordered = sorted(items, key=lambda i: (i.created_at, i.id), reverse=True)
    decisions = {i.id: Decision(i.id, keep=False) for i in ordered}
    regular = [i for i in ordered if i.kind != "safety"]
    counted = [i for i in regular if not i.damaged]
    for i in ordered:
        if i.kind == "safety":
            decisions[i.id].keep = True
            decisions[i.id].reasons.append("safety snapshot: not a regular backup (it "
                                           "expires on its own)")
    if counted:
        _keep(decisions[counted[0].id], "newest good backup (never forgotten)")
    for i in regular:
        if i.pinned:
            _keep(decisions[i.id], "pinned")
    if rules.keep_last:
        for n, i in enumerate(counted if rules.keep_last < 0 else counted[:rules.keep_last]):
            _keep(decisions[i.id], f"last {n + 1}")
    for period in PERIODS:
        count = getattr(rules, f"keep_{period}")
        if count:
            _periods(decisions, counted, period, count, _bucket(period, tz))
    if rules.keep_within is not None and regular:
        newest = regular[0].created_at
        since = newest - rules.keep_within
        label = format_duration(rules.keep_within)
        for i in regular:
            if i.created_at <= since:
                break
            _keep(decisions[i.id], f"within {label} of the newest backup")
    if rules.keep_tag:
        wanted = [frozenset(t.split(",")) for t in rules.keep_tag]
        for i in regular:
            have = set(i.tags)
            for w in wanted:
                if w <= have:
                    _keep(decisions[i.id], f"tag {','.join(sorted(w))}")
    for i in regular:
        if not decisions[i.id].keep:
            decisions[i.id].reasons = ["damaged, and no rule keeps it" if i.damaged
                                       else "no rule keeps it"]
    return [decisions[i.id] for i in ordered]


def _keep(d: Decision, reason: str) -> None:
    d.keep = True
    d.reasons.append(reason)


def _periods(decisions: dict[str, Decision], counted: list[Item], period: str, count: int,
             key: Callable[[datetime], tuple[int, ...]]) -> None:
    left = count
    last: tuple[int, ...] | None = None
    unit = _PERIOD_NAMES[period]
    for i in counted:
        if left == 0:
            break
        k = key(i.created_at)
        if k != last:
            _keep(decisions[i.id], f"{period} ({unit} {'-'.join(map(str, k))})")
            last = k
            left -= 1
    if left > 0 and counted:
        _keep(decisions[counted[-1].id], f"oldest, as {period} {count} reaches further "
                                          "back than the backups do")


def items_from_rows(rows: Iterable[Any]) -> list[Item]:
    """``Item`` s from catalog rows (``common.db.Backup``-like objects)."""
    out = []
    for r in rows:
        created = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)
        out.append(Item(id=r.id, created_at=created, tags=tuple(r.tags or ()),
                        pinned=bool(r.pinned), kind=r.kind or "backup",
                        damaged=r.verify_status == "damaged"))
    return out
