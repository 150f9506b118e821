"""Translation of Docker SDK and transport exceptions into volkeeper's error tree."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests

from common.errors import Conflict, DockerError, NotFound


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
    except docker.errors.NotFound as e:
        if volume is None:
            raise DockerError(f"Docker object not found on host {url}: {_explain(e)}") from e
        raise NotFound(
            "volume",
            volume,
            hint=f"on host {url}; list the volumes with `volkeeper volumes` or `docker volume ls`",
        ) from e
    except docker.errors.APIError as e:
        if e.status_code == 409:
            raise Conflict(
                f"the Docker engine on host {url} refused: {_explain(e)}",
                hint="the object exists or is in use; pick another name or free it first",
            ) from e
        raise DockerError(
            f"the Docker engine on host {url} failed: {_explain(e)}",
            hint="see the message above and the dockerd log on that host",
        ) from e
    except (requests.ConnectionError, ConnectionError) as e:
        raise unreachable(url, _short(e)) from e
    except docker.errors.DockerException as e:
        if "Connection" in str(e) or "connect" in str(e):
            raise unreachable(url, _short(e)) from e
        raise DockerError(f"Docker client error for host {url}: {_short(e)}") from e


def _explain(e: docker.errors.APIError) -> str:
    explanation = e.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or e)


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) < 200 else text[:197] + "..."
