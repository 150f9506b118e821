"""The Docker adapter: volumes, the containers using them, and access to their content.

Concepts:

* ``DockerHost`` — one Docker engine (a socket or TCP URL). Lists, inspects, creates and
  removes volumes and gives access to their content.
* ``VolumeInfo`` / ``ContainerRef`` — plain frozen value objects describing a volume and
  the containers that mount it.
* *Direct access* — ``DockerHost.local_path`` hands the engine the volume's directory when
  this process can use it (fast: GNU tar reads it).
* *Archive-API access* — ``archive_source`` / ``archive_sink`` move a tar stream through
  dockerd using a short-lived, never-started *helper container* whose image
  (``volkeeper/helper:1``) is generated locally: no registry is ever contacted.
"""

from common.docker.adapter import DockerHost
from common.docker.models import HELPER_IMAGE, HELPER_LABEL, ContainerRef, VolumeInfo

__all__ = ["HELPER_IMAGE", "HELPER_LABEL", "ContainerRef", "DockerHost", "VolumeInfo"]
