"""Recreate a container with one volume swapped for another (``volkeeper migrate
--recreate-containers`` on one host): the new container has the old one's name and its
configuration as ``docker inspect`` shows it (image, command, environment, labels, ports,
restart policy, network, every other mount), with the source volume's mounts pointing at
the destination volume. The old container is kept, stopped and renamed, so the move can
be undone (``undo``). Across hosts (an evacuation, ``migrate --to-host B``), the source's
worker takes ``creation_body`` and the destination's ``create``s it (the old container
stays stopped, under its name, on the source host)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from common.docker.failures import translated

if TYPE_CHECKING:
    from common.docker.adapter import DockerHost

#: networks a container is put on by ``HostConfig.NetworkMode`` alone
_BUILTIN_NETWORKS = ("bridge", "host", "none", "default")


def swapped(host_config: dict[str, Any], source: str, dest: str) -> dict[str, Any]:
    """``HostConfig`` with the mounts of volume ``source`` pointing at ``dest``."""
    out = dict(host_config)
    binds = []
    for b in host_config.get("Binds") or []:
        name, _, rest = str(b).partition(":")
        binds.append(f"{dest}:{rest}" if name == source and rest else b)
    out["Binds"] = binds or None
    mounts = []
    for m in host_config.get("Mounts") or []:
        if m.get("Type") == "volume" and m.get("Source") == source:
            m = {**m, "Source": dest}
        mounts.append(m)
    out["Mounts"] = mounts or None
    return out


def creation_body(info: dict[str, Any], source: str, dest: str) -> dict[str, Any]:
    """The ``POST /containers/create`` body of a container like ``info`` (its ``docker
    inspect``) with the mounts of volume ``source`` pointing at ``dest``."""
    hc = swapped(info["HostConfig"], source, dest)
    body: dict[str, Any] = {**info["Config"], "HostConfig": hc}
    mode = str(hc.get("NetworkMode") or "")
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    if mode in networks and mode not in _BUILTIN_NETWORKS:
        ep = networks[mode]
        body["NetworkingConfig"] = {"EndpointsConfig": {mode: {
            "Aliases": ep.get("Aliases"), "Links": ep.get("Links")}}}
    return body


def create(host: DockerHost, name: str, body: dict[str, Any], start: bool) -> str:
    """Create container ``name`` from ``body`` (``creation_body``) and start it with
    ``start``; on a failure to start it is removed again. Returns its id."""
    api = host.client.api
    with translated(host.base_url):
        created = api._result(api._post_json(api._url("/containers/create"), data=body,
                                             params={"name": name}), True)
        new_id = str(created["Id"])
        try:
            if start:
                api.start(new_id)
        except BaseException:
            api.remove_container(new_id, force=True)
            raise
    return new_id


def inspect(host: DockerHost, container_id: str) -> dict[str, Any]:
    with translated(host.base_url):
        return dict(host.client.api.inspect_container(container_id))


def recreate(host: DockerHost, container_id: str, source: str, dest: str, keep_as: str,
             start: bool) -> dict[str, str]:
    """Rename the container to ``keep_as``, create one with its name and configuration on
    ``dest`` instead of ``source``, start it with ``start``; on any failure the new one is
    removed and the old one gets its name back. Returns ``{name, old_id, new_id}``."""
    api = host.client.api
    info = inspect(host, container_id)
    name = str(info["Name"]).lstrip("/")
    body = creation_body(info, source, dest)
    with translated(host.base_url):
        api.rename(container_id, keep_as)
        try:
            new_id = create(host, name, body, start)
        except BaseException:
            api.rename(container_id, name)
            raise
    return {"name": name, "old_id": str(info["Id"]), "new_id": new_id}


def undo(host: DockerHost, done: dict[str, str]) -> None:
    """Remove the recreated container and give the old one its name back (stopped); one
    recreated on another host (no ``old_id`` here) is only removed."""
    import docker.errors

    api = host.client.api
    with translated(host.base_url):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(done["new_id"], force=True)
        if done.get("old_id") and not done.get("other_host"):
            api.rename(done["old_id"], done["name"])
