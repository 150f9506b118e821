"""Plain value objects the Docker adapter returns: a volume and the containers using it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HELPER_IMAGE = "volkeeper/helper:1"
# Helper *containers* carry ``volkeeper.helper=1`` (set by archive_api); the image carries
# ``volkeeper.image=helper`` instead, because containers inherit their image's labels and
# every container made from it would otherwise look like a helper (and be swept).
HELPER_LABEL = "volkeeper.helper"


@dataclass(frozen=True)
class ContainerRef:
    """A container that mounts a volume; ``state`` is running, exited, created, paused …;
    ``labels`` its labels (the hooks read their ``volkeeper.*`` ones; policies select
    volumes by a label on a container using them)."""

    id: str
    name: str
    state: str
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    #: the image as the container was created from it (a name, or an id)
    image: str = field(default="", compare=False, hash=False)


@dataclass(frozen=True)
class VolumeInfo:
    """One Docker volume as the engine reports it.

    ``mountpoint`` is the path on the Docker host (it may not be reachable from this
    process; see ``DockerHost.local_path``). ``size_bytes`` is None unless sizes were asked
    for and the driver reports them. ``containers`` excludes volkeeper's own helpers.
    """

    name: str
    driver: str
    mountpoint: str | None
    labels: dict[str, str]
    created_at: str | None
    size_bytes: int | None
    containers: tuple[ContainerRef, ...]
    options: dict[str, str] = field(default_factory=dict, compare=False)


def container_ref(summary: dict[str, Any]) -> ContainerRef:
    """A ``ContainerRef`` from one entry of ``GET /containers/json``."""
    names = summary.get("Names") or []
    name = names[0].lstrip("/") if names else str(summary["Id"])[:12]
    return ContainerRef(id=str(summary["Id"]), name=name, state=str(summary.get("State", "")),
                        labels=dict(summary.get("Labels") or {}),
                        image=str(summary.get("Image") or ""))


def volume_info(
    raw: dict[str, Any], containers: tuple[ContainerRef, ...], size_bytes: int | None
) -> VolumeInfo:
    """A ``VolumeInfo`` from ``GET /volumes`` or ``GET /volumes/NAME`` output."""
    return VolumeInfo(
        name=str(raw["Name"]),
        driver=str(raw.get("Driver") or "local"),
        mountpoint=raw.get("Mountpoint") or None,
        labels=dict(raw.get("Labels") or {}),
        created_at=raw.get("CreatedAt") or None,
        size_bytes=size_bytes,
        containers=containers,
        options=dict(raw.get("Options") or {}),
    )


def mounted_volumes(summary: dict[str, Any]) -> list[str]:
    """Names of the volumes a container summary mounts."""
    return [
        str(m["Name"])
        for m in summary.get("Mounts") or []
        if m.get("Type") == "volume" and m.get("Name")
    ]
