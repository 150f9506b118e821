"""What a repository check reports: problems (damaged or missing objects with the paths
that depend on them) and counts of what it looked at."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from common.errors import StorageError
from common.repository.core.damage import Damage, write_damage
from common.repository.core.repository import Repository

MAX_PATHS = 1000
log = logging.getLogger(__name__)


@dataclass
class Problem:
    """One damaged or missing object and what depends on it."""

    kind: str  # pack, blob, index, snapshot, tree
    object_id: str
    message: str
    paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON form for job records."""
        return {"kind": self.kind, "id": self.object_id, "message": self.message,
                "paths": self.paths}


@dataclass
class CheckReport:
    """What a check looked at and everything it found."""

    snapshots: int = 0
    index_files: int = 0
    packs: int = 0
    blobs: int = 0
    packs_read: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    unreferenced_packs: int = 0
    packs_selected: int = 0
    seed: int | None = None
    problems: list[Problem] = field(default_factory=list)
    #: The damage mark this check wrote (hex id), if it found damage.
    damage_mark: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing is damaged or missing."""
        return not self.problems

    def damaged_objects(self) -> set[str]:
        """Ids of every object named in a problem."""
        return {p.object_id for p in self.problems}


class Findings:
    """The problems of one check so far, by damaged pack and blob."""

    def __init__(self, repo: Repository, report: CheckReport) -> None:
        self.repo = repo
        self.report = report
        self.bad_packs: dict[bytes, Problem] = {}
        self.bad_blobs: dict[bytes, Problem] = {}
        #: What is damaged for certain (not storage errors): recorded by ``record``.
        self.damage = Damage()

    def record(self, source: str) -> None:
        """Write the damage found as a mark in the repository (nothing when none)."""
        new = self.damage.without(self.repo.damage)
        try:
            mark = write_damage(self.repo.backend, self.repo.cipher, new, source)
        except StorageError as exc:  # a read-only target: the check's report still stands
            log.warning("could not record the damage found in %s (%s); backups keep "
                        "reusing it until a check can write there", self.repo.backend.display,
                        exc)
            return
        if mark is not None:
            self.report.damage_mark = mark.hex()

    def problem(self, kind: str, object_id: bytes, message: str) -> Problem:
        p = Problem(kind, object_id.hex(), message)
        self.report.problems.append(p)
        return p


def note(problem: Problem, path: str) -> None:
    """Add ``path`` to what depends on ``problem`` (at most ``MAX_PATHS``)."""
    if len(problem.paths) < MAX_PATHS and path not in problem.paths:
        problem.paths.append(path)


def unindexed_message(repo: Repository, blob_id: bytes) -> str:
    """Why a referenced blob has no usable index entry (a damage mark, or none at all)."""
    damaged = repo.quarantined.get(blob_id)
    if damaged is not None:
        return (f"blob {blob_id.hex()} was found damaged in pack {damaged.pack_id.hex()} and "
                "no healthy copy is stored (run `volkeeper repair`; a new backup of the "
                "same data stores it again)")
    return f"blob {blob_id.hex()} is referenced but not indexed"
