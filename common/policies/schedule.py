"""When a policy runs: cron expressions in a time zone, presets and fixed intervals.

- A *cron* schedule (five fields, or a preset ``@hourly`` ``@daily`` ``@weekly``
  ``@monthly`` ``@yearly``) is read in the policy's wall-clock time (``tz``). Its *slots*
  are the wall-clock times croniter yields, each mapped to one instant:

  * a wall time that does not exist (the hour skipped when clocks spring forward) runs at
    the change itself — ``30 2 * * *`` in Europe/Berlin runs at 03:00 CEST that day, once;
  * a wall time that occurs twice (clocks fall back) runs at its first occurrence only.

  So a clock change neither skips nor doubles a run.
- An *interval* (``@every 30s``, ``@every 6h``, ``@every 1h30m``) has slots every
  interval from the Unix epoch, in absolute time (no time zone, no DST).
- *Jitter* delays each run by a deterministic share of ``jitter_seconds`` (the same for a
  policy and slot wherever it is computed: two schedulers agree).
- After downtime, ``due_runs`` makes up a missed run once, not once per missed slot.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from croniter import croniter

PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
#: the longest duration (100 years): a schedule, an RPO or keep_within beyond it is a typo
MAX_DURATION = 100 * _UNITS["y"]
_DURATION = re.compile(r"(\d+)\s*([smhdwy])")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: how far a wall-clock time can be from UTC-offset-naive arithmetic (largest DST shift)
_SHIFT = timedelta(hours=3)
_REFERENCE = datetime(2026, 1, 5)  # a Monday: where a cron schedule's interval is measured


def _croniter() -> type[croniter]:
    """croniter, imported when a cron schedule is first used (~10 ms a CLI command that
    shows no schedule does not pay)."""
    from croniter import croniter

    return croniter


def parse_duration(text: str) -> timedelta:
    """``30s``, ``90m``, ``6h``, ``26h``, ``7d``, ``2w``, ``1y``, ``1h30m`` (m: minutes;
    d: days, w: weeks, y: 365 days). ValueError names the accepted form."""
    s = str(text).strip().lower().replace(" ", "")
    parts = _DURATION.findall(s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, e.g. 30s, "
                         "90m, 26h, 7d, 2w or 1h30m")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: it must be longer than 0s")
    if seconds > MAX_DURATION:  # beyond, timedelta or the dates added to it overflow
        raise ValueError(f"invalid duration {text[:40]!r}: it must be at most 100y")
    return timedelta(seconds=seconds)


def format_duration(d: timedelta) -> str:
    """The shortest spelling ``parse_duration`` reads back (``26h``, ``1d``, ``90s``)."""
    seconds = int(d.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_tz(name: str) -> ZoneInfo:
    """An IANA time zone (``Europe/Berlin``, ``UTC``). ValueError when unknown."""
    try:
        if not name or name != name.strip() or ".." in name or name.startswith("/"):
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as UTC, "
                         "Europe/Berlin or America/New_York") from None


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: ``cron`` (five fields) or ``every`` (an interval), in ``tz``."""

    expr: str
    tz: ZoneInfo
    cron: str | None = None
    every: timedelta | None = None

    # --- slots -------------------------------------------------------------------------
    def next_after(self, t: datetime) -> datetime:
        """The first slot strictly after ``t`` (an aware time), in UTC."""
        t = _utc(t)
        if self.every is not None:
            n = (t - _EPOCH) // self.every
            return _EPOCH + (n + 1) * self.every
        for slot in self._forward(t - _SHIFT):
            if slot > t:
                return slot
        raise AssertionError("unreachable: croniter yields slots forever")

    def last_at_or_before(self, t: datetime) -> datetime:
        """The newest slot at or before ``t``, in UTC."""
        t = _utc(t)
        if self.every is not None:
            return _EPOCH + ((t - _EPOCH) // self.every) * self.every
        for slot in self._backward(t + _SHIFT):
            if slot <= t:
                return slot
        raise AssertionError("unreachable: croniter yields slots forever")

    def slots(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Every slot in (``after``, ``until``], oldest first."""
        slot = self.next_after(after)
        while slot <= _utc(until):
            yield slot
            slot = self.next_after(slot)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` slots strictly after ``after``, in UTC, oldest first."""
        out: list[datetime] = []
        slot = after
        for _ in range(count):
            slot = self.next_after(slot)
            out.append(slot)
        return out

    def interval(self) -> timedelta:
        """How far apart runs are at most (wall-clock; a DST day does not count): the
        interval of ``@every``, else the longest gap among a year of a cron's slots."""
        if self.every is not None:
            return self.every
        return _cron_interval(self.cron or "")

    def due_runs(self, last_run: datetime | None, now: datetime) -> list[datetime]:
        """The runs to start at ``now`` when the last one started at ``last_run``: the
        newest slot since then, once (after downtime a missed run is made up once, not
        once per missed slot); ``[]`` when no slot passed. A policy that never ran has
        nothing to make up: it runs at its next slot."""
        if last_run is None:
            return []
        newest = self.last_at_or_before(now)
        return [newest] if newest > _utc(last_run) else []

    # --- cron: wall-clock slots mapped to instants -----------------------------------
    def _forward(self, start: datetime) -> Iterator[datetime]:
        it = _iterator(self.cron or "", _wall(start, self.tz))
        while True:
            yield _instant(it.get_next(datetime), self.tz)

    def _backward(self, start: datetime) -> Iterator[datetime]:
        it = _iterator(self.cron or "", _wall(start, self.tz))
        while True:
            yield _instant(it.get_prev(datetime), self.tz)


_ITERATORS = threading.local()


def _iterator(cron: str, start: datetime) -> croniter:
    """A croniter over ``cron`` from naive ``start``: one per expression and thread, moved
    with ``set_current`` (building one parses the expression: ~0.3 ms). The caller is
    done with it before it asks for the next (``next_after`` and ``last_at_or_before``
    consume their iteration at once)."""
    cache: dict[str, croniter] = _ITERATORS.__dict__.setdefault("by_cron", {})
    it = cache.get(cron)
    if it is None:
        if len(cache) > 4096:
            cache.clear()
        it = cache[cron] = _croniter()(cron, start)
    else:
        it.set_current(start, force=True)
    return it


@functools.lru_cache(maxsize=8192)
def parse_schedule(expr: str, tz: str = "UTC") -> Schedule:
    """A ``Schedule`` from a cron expression, a preset or ``@every DURATION``.
    ValueError says what is accepted (the time zone's own error for a bad ``tz``)."""
    zone = parse_tz(tz)
    text = " ".join(str(expr).split())
    if text.lower().startswith("@every"):
        every = parse_duration(text[len("@every"):])
        return Schedule(expr=text, tz=zone, every=every)
    cron = PRESETS.get(text.lower(), text)
    if text.lower() not in PRESETS and (len(cron.split()) != 5
                                        or not _croniter().is_valid(cron)):
        raise ValueError(f"invalid schedule {expr!r}: use a cron expression of five fields "
                         "(minute hour day month weekday, e.g. '0 2 * * *'), a preset "
                         f"({', '.join(p for p in PRESETS if p not in ('@midnight', '@annually'))}"
                         ") or '@every 6h'")
    if text.lower() not in PRESETS:
        _check_fires(expr, cron)
    return Schedule(expr=text, tz=zone, cron=cron)


def _check_fires(expr: str, cron: str) -> None:
    """ValueError for a cron expression that names no date (``0 0 31 2 *``: croniter
    accepts it, then finds no slot: every scheduler tick failed on it, for every
    policy)."""
    from croniter import CroniterBadDateError

    try:
        _croniter()(cron, _REFERENCE).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"invalid schedule {expr!r}: it names no date that exists (such "
                         "as 31 February), so it would never run") from None


#: ``_cron_interval`` of the presets' expressions, known without croniter (a read command
#: showing a preset's RPO need not import it; ``test_schedule`` checks them)
PRESET_INTERVALS = {"0 * * * *": timedelta(hours=1), "0 0 * * *": timedelta(days=1),
                    "0 0 * * 0": timedelta(days=7), "0 0 1 * *": timedelta(days=31),
                    "0 0 1 1 *": timedelta(days=365)}


@functools.lru_cache(maxsize=4096)
def _cron_interval(cron: str) -> timedelta:
    """The longest gap between a cron expression's wall-clock times over about a year
    (the same in every time zone; cached: ~10-40 ms of croniter per expression)."""
    return PRESET_INTERVALS.get(cron) or measured_interval(cron)


def measured_interval(cron: str) -> timedelta:
    """``_cron_interval`` measured with croniter."""
    it = _croniter()(cron, _REFERENCE)
    prev: datetime = it.get_next(datetime)
    longest = timedelta(0)
    for _ in range(400):
        nxt: datetime = it.get_next(datetime)
        longest = max(longest, nxt - prev)
        if nxt - _REFERENCE > timedelta(days=400):
            break
        prev = nxt
    return longest


def jitter_for(policy: str, slot: datetime, jitter_seconds: int) -> timedelta:
    """A delay in [0, ``jitter_seconds``) fixed by the policy and the slot."""
    if jitter_seconds <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(f"{policy}\0{_utc(slot).isoformat()}".encode(),
                             digest_size=8).digest()
    return timedelta(seconds=int.from_bytes(digest, "big") % jitter_seconds)


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("schedule times must be timezone-aware")
    return t.astimezone(UTC)


def _wall(t: datetime, tz: ZoneInfo) -> datetime:
    """The naive wall-clock time of instant ``t`` in ``tz``."""
    return t.astimezone(tz).replace(tzinfo=None)


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant (UTC) a slot at wall-clock ``wall`` runs: its first occurrence; a wall
    time skipped by a clock change runs at the change."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == wall:
        return first
    # in the gap: fold=1 reads it with the offset after the change (an instant before the
    # change), fold=0 with the offset before (an instant after it): the change lies between
    lo = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if _wall(mid, tz) < wall:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)
