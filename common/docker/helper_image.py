"""The helper image: a tiny image built on the host itself, never pulled from a registry.

Helper containers (see ``archive_api``) only exist so that dockerd mounts a volume at
``/volume`` and serves the Docker archive API for it. They are *created, never started*, so
the image needs no binary at all: its one layer holds a placeholder file that says what the
image is for.

The image is written in ``docker save`` layout by Python and handed to ``POST /images/load``.
Every byte is deterministic (fixed timestamps, sorted JSON), so the image ID is the same on
every host and every run. That makes creation idempotent and race-safe: two workers loading
it at once load the same content-addressed image and the tag ends on the same ID.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
from typing import Any

from common.docker.models import HELPER_IMAGE as HELPER_IMAGE
from common.docker.models import HELPER_LABEL as HELPER_LABEL
from common.errors import DockerError

log = logging.getLogger(__name__)

# HELPER_IMAGE, HELPER_LABEL: in ``models`` (read by every listing, without this module)
IMAGE_LABEL = "volkeeper.image"
PLACEHOLDER = b"volkeeper helper image: containers from it are created, never run.\n"
_EPOCH = "1970-01-01T00:00:00Z"


def _deterministic_tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A USTAR archive of ``members`` with no timestamps or owners that vary."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _layer() -> bytes:
    volume = tarfile.TarInfo("volume")
    volume.type = tarfile.DIRTYPE
    volume.mode = 0o755
    readme = tarfile.TarInfo("volkeeper-helper")
    readme.size = len(PLACEHOLDER)
    readme.mode = 0o644
    return _deterministic_tar([(volume, None), (readme, PLACEHOLDER)])


def image_archive(architecture: str = "amd64") -> tuple[bytes, str]:
    """The helper image as a ``docker load`` tarball, and the image ID it will get."""
    layer = _layer()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config: dict[str, Any] = {
        "architecture": architecture,
        "os": "linux",
        "created": _EPOCH,
        "config": {
            "Cmd": ["/volkeeper-helper"],
            "Labels": {IMAGE_LABEL: "helper", "org.opencontainers.image.title": "volkeeper helper"},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": _EPOCH, "created_by": "volkeeper (generated in Python)"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    image_id = hashlib.sha256(config_bytes).hexdigest()
    layer_dir = diff_id.removeprefix("sha256:")
    manifest = [
        {
            "Config": f"{image_id}.json",
            "RepoTags": [HELPER_IMAGE],
            "Layers": [f"{layer_dir}/layer.tar"],
        }
    ]
    files: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name, data in (
        (f"{image_id}.json", config_bytes),
        (f"{layer_dir}/layer.tar", layer),
        ("manifest.json", json.dumps(manifest).encode()),
    ):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        files.append((info, data))
    return _deterministic_tar(files), "sha256:" + image_id


def _architecture(api: Any) -> str:
    try:
        return str(api.version().get("Arch") or "amd64")
    except Exception:  # noqa: BLE001 - the caller's next call reports a dead engine
        return "amd64"


def ensure_helper_image(api: Any) -> str:
    """Make sure ``volkeeper/helper:1`` exists on the engine behind ``api``; return its ID.

    ``api`` is a ``docker.APIClient``. Loads the image when the tag is missing or points at
    something else (a user retagged it); never contacts a registry.
    """
    import docker.errors

    archive, expected = image_archive(_architecture(api))
    try:
        current = api.inspect_image(HELPER_IMAGE).get("Id")
    except docker.errors.ImageNotFound:
        current = None
    if current == expected:
        return expected
    log.info("loading the helper image %s (%s) into the engine", HELPER_IMAGE, expected[:19])
    try:
        for message in api.load_image(archive, quiet=True):
            if isinstance(message, dict) and message.get("error"):
                raise DockerError(
                    f"could not create the helper image {HELPER_IMAGE}: {message['error']}",
                    hint="check the Docker engine log; the image is built locally",
                )
        loaded = api.inspect_image(HELPER_IMAGE).get("Id")
    except docker.errors.APIError as e:
        raise DockerError(
            f"could not create the helper image {HELPER_IMAGE}: {e.explanation or e}",
            hint="check the Docker engine log; the image is built locally, no registry needed",
        ) from e
    if loaded != expected:
        raise DockerError(
            f"the helper image {HELPER_IMAGE} has ID {loaded}, expected {expected}",
            hint=f"remove the image ({HELPER_IMAGE}) so that volkeeper can recreate it",
        )
    return expected
