"""Which volumes a policy applies to, and which volumes several policies claim.

A *selection* names volumes by any of (all given criteria must hold):

- ``volumes``: volume names;
- ``hosts``: the Docker hosts they are on;
- ``selector``: ``KEY=VALUE``, a label on the volume or on a container using it
  (e.g. ``volkeeper.policy=nightly``);
- ``project``: a Docker Compose project (the ``com.docker.compose.project`` label, on the
  volume or a container using it).

A selection with none of them is refused: a policy never means "every volume" by
accident (name the hosts to mean all their volumes).

A volume matched by several policies is a *conflict*: it is backed up by one of them only
(its *owner*: the first by name) and the others report it instead of backing it up twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

COMPOSE_PROJECT = "com.docker.compose.project"


@dataclass(frozen=True)
class Selection:
    volumes: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    selector: str | None = None
    project: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"volumes": list(self.volumes), "hosts": list(self.hosts),
                "selector": self.selector, "project": self.project}


@dataclass(frozen=True)
class VolumeRef:
    """A volume of the inventory as selection sees it: its labels and those of each
    container using it."""

    host: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    container_labels: tuple[Mapping[str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.host, self.name)


def parse_selector(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` → (key, value). ValueError says the form."""
    key, sep, value = str(text).partition("=")
    if not sep or key.split() != [key]:  # empty, or whitespace in or around it
        raise ValueError(f"invalid selector {text!r}: use LABEL=VALUE, e.g. "
                         "volkeeper.policy=nightly")
    return key, value


def check_selection(volumes: Sequence[str] = (), hosts: Sequence[str] = (),
                    selector: str | None = None, project: str | None = None) -> Selection:
    """A validated ``Selection``; ValueError when it selects nothing or the selector is
    malformed."""
    if selector:
        parse_selector(selector)
    sel = Selection(volumes=tuple(dict.fromkeys(volumes)), hosts=tuple(dict.fromkeys(hosts)),
                    selector=selector or None, project=project or None)
    if not (sel.volumes or sel.hosts or sel.selector or sel.project):
        raise ValueError("the policy selects no volume: give volumes, hosts, a selector "
                         "(LABEL=VALUE) or a Compose project")
    return sel


def _has_label(v: VolumeRef, key: str, value: str) -> bool:
    return v.labels.get(key) == value or any(c.get(key) == value for c in v.container_labels)


def matches(sel: Selection, v: VolumeRef) -> bool:
    if sel.hosts and v.host not in sel.hosts:
        return False
    if sel.volumes and v.name not in sel.volumes:
        return False
    if sel.selector:
        key, value = parse_selector(sel.selector)
        if not _has_label(v, key, value):
            return False
    return not sel.project or _has_label(v, COMPOSE_PROJECT, sel.project)


class Inventory:
    """Volumes indexed by name, host and label (on the volume or a container using it), so
    matching many policies against many volumes costs what they select, not the product of
    both (1,000 policies by 1,000 volumes)."""

    def __init__(self, refs: Iterable[VolumeRef]) -> None:
        self.refs = list(refs)
        self._by_name: dict[str, set[int]] = {}
        self._by_host: dict[str, set[int]] = {}
        self._by_label: dict[tuple[str, str], set[int]] = {}
        for i, v in enumerate(self.refs):
            self._by_name.setdefault(v.name, set()).add(i)
            self._by_host.setdefault(v.host, set()).add(i)
            for labels in (v.labels, *v.container_labels):
                for k, val in labels.items():
                    self._by_label.setdefault((k, val), set()).add(i)

    def select(self, sel: Selection) -> list[VolumeRef]:
        """The volumes ``sel`` matches, by host and name."""
        sets: list[set[int]] = []
        if sel.volumes:
            sets.append(set().union(*(self._by_name.get(n, set()) for n in sel.volumes)))
        if sel.hosts:
            sets.append(set().union(*(self._by_host.get(h, set()) for h in sel.hosts)))
        if sel.selector:
            sets.append(self._by_label.get(parse_selector(sel.selector), set()))
        if sel.project:
            sets.append(self._by_label.get((COMPOSE_PROJECT, sel.project), set()))
        if not sets:
            return []
        found = set.intersection(*sets)
        return sorted((self.refs[i] for i in found), key=lambda v: v.key)


def select(sel: Selection, inventory: Iterable[VolumeRef] | Inventory) -> list[VolumeRef]:
    """The volumes of ``inventory`` the selection matches, by host and name."""
    inv = inventory if isinstance(inventory, Inventory) else Inventory(inventory)
    return inv.select(sel)


def claims(policies: Mapping[str, Selection], inventory: Iterable[VolumeRef] | Inventory
           ) -> dict[tuple[str, str], list[str]]:
    """(host, volume) → the names of the policies matching it, sorted (the first owns
    it); volumes no policy matches are left out."""
    inv = inventory if isinstance(inventory, Inventory) else Inventory(inventory)
    out: dict[tuple[str, str], list[str]] = {}
    for name in sorted(policies):
        for v in inv.select(policies[name]):
            out.setdefault(v.key, []).append(name)
    return out


def volume_ref(host: str, name: str, labels: Mapping[str, Any] | None,
               containers: Mapping[str, Any] | None) -> VolumeRef:
    """From an inventory row (``labels``, ``containers = {"items": [{"labels": …}]}``)."""
    items = (containers or {}).get("items") or []
    return VolumeRef(host=host, name=name,
                     labels={str(k): str(v) for k, v in (labels or {}).items()},
                     container_labels=tuple(
                         {str(k): str(v) for k, v in (c.get("labels") or {}).items()}
                         for c in items))
