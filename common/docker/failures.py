"""Translation of Docker SDK and transport exceptions into volkeeper's error tree.

The SDK is not imported here: an exception can only be one of its errors when the SDK is
loaded already (a read over ``engine_http`` needs none of it)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from common.errors import Conflict, DockerError, NotFound, VolkeeperError

if TYPE_CHECKING:
    import docker.errors


def unreachable(url: str, cause: object) -> DockerError:
    """The error for an engine that does not answer at ``url``."""
    return DockerError(
        f"cannot reach the Docker engine at {url}: {cause}",
        hint="check that dockerd is running and that VOLKEEPER_DOCKER_HOST / DOCKER_HOST "
        "points at its socket, and that this process may open it (root or the docker group)",
    )


@contextmanager
def translated(url: str, volume: str | None = None) -> Iterator[None]:
    """Re-raise Docker SDK errors met inside the block as volkeeper errors.

    ``volume`` names the volume the block works on, so that a 404 becomes
    ``NotFound("volume", volume)``.
    """
    try:
        yield
    except Exception as e:
        error = _translation(e, url, volume)
        if error is None:
            raise
        raise error from e


def engine_error(url: str, status: int, message: str, volume: str | None = None
                 ) -> VolkeeperError:
    """The volkeeper error for an error status the engine answered (without the SDK):
    the same as ``translated`` gives for the SDK's exception of that status."""
    if status == 404:
        if volume is None:
            return DockerError(f"Docker object not found on host {url}: {message}")
        return _volume_not_found(url, volume)
    if status == 409:
        return Conflict(
            f"the Docker engine on host {url} refused: {status} {message}",
            hint="the object exists or is in use; pick another name or free it first",
        )
    return DockerError(f"the Docker engine on host {url} failed: {status} {message}",
                       hint="see the message above and the dockerd log on that host")


def _volume_not_found(url: str, volume: str) -> NotFound:
    return NotFound(
        "volume",
        volume,
        hint=f"on host {url}; list the volumes with `volkeeper volumes` or `docker volume ls`",
    )


def _translation(e: Exception, url: str, volume: str | None) -> VolkeeperError | None:
    """The volkeeper error for an SDK or transport exception (None: not one of those)."""
    if isinstance(e, VolkeeperError):
        return None
    errors = sys.modules.get("docker.errors")
    requests = sys.modules.get("requests.exceptions")
    if errors is not None and isinstance(e, errors.NotFound):
        if volume is None:
            return DockerError(f"Docker object not found on host {url}: {_explain(e)}")
        return _volume_not_found(url, volume)
    if errors is not None and isinstance(e, errors.APIError):
        if e.status_code == 409:
            return Conflict(
                f"the Docker engine on host {url} refused: {_explain(e)}",
                hint="the object exists or is in use; pick another name or free it first",
            )
        return DockerError(
            f"the Docker engine on host {url} failed: {_explain(e)}",
            hint="see the message above and the dockerd log on that host",
        )
    if isinstance(e, ConnectionError) or (
            requests is not None and isinstance(e, requests.ConnectionError)):
        return unreachable(url, _short(e))
    if errors is not None and isinstance(e, errors.DockerException):
        if "Connection" in str(e) or "connect" in str(e):
            return unreachable(url, _short(e))
        return DockerError(f"Docker client error for host {url}: {_short(e)}")
    return None


def _explain(e: docker.errors.APIError) -> str:
    explanation = e.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or e)


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) < 200 else text[:197] + "..."
