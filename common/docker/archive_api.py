"""Moving a volume's content as a tar stream through dockerd (``GET/PUT /containers/…/archive``).

How: a *helper container* from the local helper image (``helper_image``) mounts the volume at
``/volume`` (read-only when reading) and is **created, never started**; dockerd mounts the
volume for the duration of each archive call, for any volume driver. The container carries
the label ``volkeeper.helper=1`` and is removed when the transfer ends, also on error;
``sweep_helpers`` removes leftovers of killed workers. Each helper also names its owner
(``volkeeper.owner=<hostname>/<pid>`` of the worker process that made it), so the host
agent's periodic sweep removes a helper at once when its owner process on this machine is
gone, and any helper by age otherwise.

Stream layout (both directions): member names are relative to the volume root and start
with ``./`` — the first member is ``.`` (the root directory itself), then ``./a.txt``,
``./dir/b`` … This is what ``GET …/archive?path=/volume/.`` yields and what
``tar -c -C MOUNTPOINT .`` yields. The sink also accepts bare names (``a.txt``) and a root
member spelled ``./``.

What the archive API preserves, measured on dockerd 20.10 (API 1.41) against GNU tar 1.34
reading the mountpoint directly (``tests/integration/docker/test_adapter.py`` asserts the
kept ones):

======================  =====================================  ==========================
attribute               reading (GET archive)                  writing (PUT archive)
======================  =====================================  ==========================
file bytes              kept                                   kept
mode incl. suid/sticky  kept                                   kept
numeric uid/gid         kept (no user/group names)             kept only with
                                                               ``copyUIDGID=1`` (we send
                                                               it; without it: root:root)
mtime                   whole seconds only (sub-second lost)   kept incl. PAX sub-seconds
symlinks, hardlinks     kept (hardlinks as links)              kept
fifos, char devices     kept                                   kept
long / non-UTF-8 names  kept (PAX headers)                     kept
xattrs                  only ``security.capability``; ``user.*``, ``trusted.*`` and
                        POSIX ACLs (``system.posix_acl_*``) are dropped
sparse files            expanded: holes travel as zeros and are written back as allocated
                        blocks (GNU tar ``--sparse`` keeps them)
volume root (``.``)     mode/owner/mtime in the stream         *ignored* by dockerd; we
                                                               re-apply them with a second
                                                               PUT of one ``volume`` entry
                                                               to ``/`` (see below)
atime / ctime           not carried (as with GNU tar)
======================  =====================================  ==========================

So the direct path (GNU tar on the mountpoint) is preferred whenever the worker can read
the mountpoint; the archive API is the fallback that works for every driver and for a
worker that sees only the Docker socket.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import tarfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO, cast

from common.docker.helper_image import HELPER_IMAGE, HELPER_LABEL

log = logging.getLogger(__name__)

VOLUME_LABEL = "volkeeper.volume"
OWNER_LABEL = "volkeeper.owner"
MOUNT_POINT = "/volume"
CHUNK = 1024 * 1024
_META_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


@contextmanager
def helper_container(api: Any, volume: str, read_only: bool) -> Iterator[str]:
    """Create a never-started container that mounts ``volume`` at /volume; yield its ID.

    The container is removed when the block ends, whatever happened inside it.
    """
    from docker.types import Mount

    mount = Mount(MOUNT_POINT, volume, type="volume", read_only=read_only, no_copy=True)
    host_config = api.create_host_config(mounts=[mount], network_mode="none")
    created = api.create_container(
        HELPER_IMAGE,
        name=f"volkeeper-helper-{uuid.uuid4().hex[:12]}",
        labels={HELPER_LABEL: "1", VOLUME_LABEL: volume, OWNER_LABEL: owner_tag()},
        network_disabled=True,
        host_config=host_config,
    )
    container_id = str(created["Id"])
    try:
        yield container_id
    finally:
        _remove_quietly(api, container_id)


def _remove_quietly(api: Any, container_id: str) -> None:
    try:
        api.remove_container(container_id, force=True)
    except Exception as e:  # noqa: BLE001 - cleanup must not hide the real error
        log.warning("could not remove helper container %s: %s", container_id[:12], e)


def owner_tag(pid: int | None = None) -> str:
    """``<hostname>/<pid>`` of this (or the given) process: who owns a helper container."""
    return f"{socket.gethostname()}/{os.getpid() if pid is None else pid}"


def _owner_gone(owner: str | None) -> bool:
    """True when ``owner`` names a process of this machine that no longer runs."""
    name, _, pid_text = (owner or "").rpartition("/")
    if name != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine (or container) made it: only age tells
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def sweep_helpers(api: Any, older_than_seconds: float = 24 * 3600) -> list[str]:
    """Remove helper containers left by killed workers; return the removed IDs.

    A helper whose owner process (same machine) has exited goes at once. Any other helper
    goes only when older than ``older_than_seconds``, so that transfers running right now
    (their helper is young, or their owner alive) are left alone.
    """
    removed = []
    now = time.time()
    for c in api.containers(all=True, filters={"label": f"{HELPER_LABEL}=1"}):
        old = now - float(c.get("Created", now)) >= older_than_seconds
        if old or _owner_gone((c.get("Labels") or {}).get(OWNER_LABEL)):
            _remove_quietly(api, c["Id"])
            removed.append(str(c["Id"]))
    return removed


def open_archive(api: Any, container_id: str) -> Any:
    """Start ``GET …/archive?path=/volume/.``; return the streaming ``requests`` response.

    ``Accept-Encoding: identity`` matters: dockerd gzips the archive for any client that
    accepts gzip (requests does by default, so docker-py's ``get_archive`` pays for it),
    which costs dockerd CPU and caps throughput far below the disk.
    """
    url = api._url("/containers/{0}/archive", container_id)
    response = api._get(
        url,
        params={"path": f"{MOUNT_POINT}/."},
        headers={"Accept-Encoding": "identity"},
        stream=True,
    )
    api._raise_for_status(response)
    return response


def response_stream(response: Any) -> BinaryIO:
    """The body of a streaming response as a binary file object (chunked decoding done)."""
    if response.headers.get("Content-Encoding", "identity") != "identity":
        response.raw.decode_content = True  # an engine that compresses anyway
    return cast(BinaryIO, response.raw)


def put_stream(api: Any, container_id: str, path: str, chunks: Iterator[bytes]) -> None:
    """``PUT …/archive?path=PATH`` with the tar ``chunks``, keeping numeric owners.

    docker-py's ``put_archive`` cannot send ``copyUIDGID``; without it dockerd chowns every
    extracted file to root, so this goes through the client's own request helpers.
    """
    url = api._url("/containers/{0}/archive", container_id)
    response = api._put(url, params={"path": path, "copyUIDGID": "1"}, data=chunks)
    api._raise_for_status(response)


def read_root_entry(stream: IO[bytes]) -> tuple[bytes, tarfile.TarInfo | None]:
    """Read the first member's header blocks from ``stream``.

    Returns the bytes consumed (to be sent on unchanged) and the member when it is the
    volume root directory (``.`` or ``./``), else None.
    """
    head = bytearray()
    while True:
        block = _read_exact(stream, tarfile.BLOCKSIZE)
        head += block
        if len(block) < tarfile.BLOCKSIZE or not block.strip(b"\0"):
            return bytes(head), None
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            return bytes(head), None
        if info.type not in _META_TYPES:
            break
        padded = -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        if padded > CHUNK:  # absurd metadata for a first member: pass through untouched
            return bytes(head), None
        head += _read_exact(stream, padded)
    try:
        padding = b"\0" * (2 * tarfile.BLOCKSIZE)
        with tarfile.open(fileobj=io.BytesIO(bytes(head) + padding), mode="r:") as tar:
            first = tar.next()
    except tarfile.TarError:
        return bytes(head), None
    if first is not None and first.isdir() and first.name in (".", "./", ""):
        return bytes(head), first
    return bytes(head), None


def root_entry_archive(root: tarfile.TarInfo) -> bytes:
    """A one-member tar that sets the volume root's mode, owner and mtime when PUT to /."""
    info = tarfile.TarInfo(MOUNT_POINT.lstrip("/"))
    info.type = tarfile.DIRTYPE
    info.mode = root.mode
    info.uid, info.gid = root.uid, root.gid
    info.mtime = root.mtime
    info.pax_headers = {k: v for k, v in root.pax_headers.items() if k.startswith("SCHILY.")}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info)
    return buf.getvalue()


def chunks_of(head: bytes, stream: IO[bytes]) -> Iterator[bytes]:
    """``head`` followed by the rest of ``stream`` in 1 MiB pieces."""
    if head:
        yield head
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return
        yield chunk


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    parts = []
    while n > 0:
        part = stream.read(n)
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)
