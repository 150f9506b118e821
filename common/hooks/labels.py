"""The labels volkeeper reads on volumes and containers, and how their values parse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

STOP = "volkeeper.stop-during-backup"
EXCLUDE = "volkeeper.exclude"
HOOK_TIMEOUT = "volkeeper.hook-timeout"
HOOK_USER = "volkeeper.hook-user"
HOOK_ON_ERROR = "volkeeper.hook-on-error"
STOP_TIMEOUT = "volkeeper.stop-timeout"
#: back up from a filesystem snapshot: auto, btrfs, zfs, lvm or off (``snapshots``)
SNAPSHOT = "volkeeper.snapshot"
#: the hook labels: ``volkeeper.<when>-<what>``
HOOK_WHEN = ("pre", "post")
HOOK_WHAT = ("backup", "restore")
DEFAULT_TIMEOUT = 300.0
#: where a ``.volkeeperignore`` lives: the volume root
IGNORE_FILE = ".volkeeperignore"

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_DEPENDS_ON = "com.docker.compose.depends_on"


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def truthy(value: str | None) -> bool:
    """``true``, ``1``, ``yes``, ``on`` (any case) are true; anything else is not."""
    return (value or "").strip().lower() in _TRUE


def patterns(value: str | None) -> list[str]:
    """The comma-separated patterns of a ``volkeeper.exclude`` label."""
    return [p.strip() for p in (value or "").split(",") if p.strip()]


@dataclass(frozen=True)
class HookSpec:
    """One hook a container's labels ask for."""

    label: str
    command: str
    timeout: float
    user: str | None
    #: fail: the backup fails; warn: a warning in the result
    on_error: str


def hook_of(labels: Mapping[str, str], when: str, what: str) -> HookSpec | None:
    """The ``volkeeper.<when>-<what>`` hook of a container's labels, None without one.
    A bad timeout or on-error value falls back to the default (``hook-timeout=abc`` runs
    with 300 s; the backup warns about it: ``bad_values``)."""
    label = f"volkeeper.{when}-{what}"
    command = (labels.get(label) or "").strip()
    if not command:
        return None
    try:
        timeout = float(labels.get(HOOK_TIMEOUT, DEFAULT_TIMEOUT))
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    if timeout <= 0:
        timeout = DEFAULT_TIMEOUT
    on_error = (labels.get(HOOK_ON_ERROR) or "").strip().lower()
    if on_error not in ("fail", "warn"):
        on_error = "fail" if when == "pre" else "warn"
    user = (labels.get(HOOK_USER) or "").strip() or None
    return HookSpec(label=label, command=command, timeout=timeout, user=user,
                    on_error=on_error)


#: every ``volkeeper.*`` label volkeeper reads on volumes and containers (the dump labels
#: are ``common.hooks.dumps``'); a label one or two typing slips from one of these is
#: reported (``misspelt``), any other ``volkeeper.*`` label may be a policy selector
KNOWN = frozenset({
    STOP, EXCLUDE, HOOK_TIMEOUT, HOOK_USER, HOOK_ON_ERROR, STOP_TIMEOUT, SNAPSHOT,
    *(f"volkeeper.{when}-{what}" for when in HOOK_WHEN for what in HOOK_WHAT),
    "volkeeper.dump", "volkeeper.dump-database", "volkeeper.dump-user",
    "volkeeper.dump-path", "volkeeper.policy", "volkeeper.restored-from",
    "volkeeper.migration"})


def _slips(a: str, b: str) -> int:
    """Edits from ``a`` to ``b``: a character added, dropped, changed, or two neighbours
    swapped (each one)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            d = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                d = min(d, prev2[j - 2] + 1)
            row.append(d)
        prev2, prev = prev, row
    return prev[-1]


def misspelt(found: Mapping[str, str]) -> list[tuple[str, str]]:
    """The labels of ``found`` that volkeeper does not read but are one or two slips from
    one it does (``volkeeper.dupm``: ``volkeeper.dump``), with that one."""
    out = []
    for name in sorted(found):
        if name in KNOWN or not name.startswith("vol"):
            continue
        near = min(KNOWN, key=lambda k: (_slips(name, k), k))
        if _slips(name, near) <= (1 if len(near) < 16 else 2):
            out.append((name, near))
    return out


def bad_values(found: Mapping[str, str]) -> list[str]:
    """What is wrong with the values of the labels of ``found`` that take a boolean or a
    number (each read as its default then: ``stop-during-backup=ture`` does not stop)."""
    out = []
    stop = found.get(STOP)
    if stop is not None and stop.strip().lower() not in _TRUE + _FALSE:
        out.append(f"{STOP}={stop!r} is neither true nor false: read as false (it stops "
                   "nothing)")
    timeout = found.get(HOOK_TIMEOUT)
    if timeout is not None:
        try:
            ok = float(timeout) > 0
        except ValueError:
            ok = False
        if not ok:
            out.append(f"{HOOK_TIMEOUT}={timeout!r} is not a number of seconds: read as "
                       f"{DEFAULT_TIMEOUT:.0f}")
    on_error = found.get(HOOK_ON_ERROR)
    if on_error is not None and on_error.strip().lower() not in ("fail", "warn"):
        out.append(f"{HOOK_ON_ERROR}={on_error!r} is neither fail nor warn: read as the "
                   "default (fail for pre hooks, warn for post hooks)")
    stop_after = found.get(STOP_TIMEOUT)
    if stop_after is not None and stop_timeout({STOP_TIMEOUT: stop_after}, -1) == -1:
        out.append(f"{STOP_TIMEOUT}={stop_after!r} is not a number of seconds from 0 to 3600: "
                   "read as the default")
    return out


def depends_on(labels: Mapping[str, str]) -> set[str]:
    """The Compose services a container depends on (``db:service_started:false,…``)."""
    raw = labels.get(COMPOSE_DEPENDS_ON) or ""
    return {item.split(":", 1)[0].strip() for item in raw.split(",") if item.strip()}


def stop_timeout(labels: Mapping[str, str], default: int) -> int:
    """Seconds a container gets to stop on SIGTERM before Docker kills it (its
    ``volkeeper.stop-timeout`` label, else ``default``)."""
    try:
        value = int(labels.get(STOP_TIMEOUT, default))
    except ValueError:
        return default
    return value if 0 <= value <= 3600 else default
