"""Where targets may point: allowlists of ``file://`` roots, S3 endpoints and password-file
directories (``VOLKEEPER_ALLOWED_TARGET_ROOTS``, ``VOLKEEPER_ALLOWED_S3_ENDPOINTS``,
``VOLKEEPER_PASSWORD_FILE_DIR``).

A target is a request to read and write files on a worker host, or to send requests with
the workers' ambient credentials to some HTTP server: without limits, whoever may add a
target may read ``/etc`` through a restore or probe the internal network. The API checks a
target when it is added (paths normalised), and a worker again when it opens one (paths
resolved through symlinks), so a row written before the limits existed cannot escape them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from common.config import Settings
from common.errors import InvalidInput
from common.storage.registry import redact


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _real(path: str, resolve: bool) -> Path:
    clean = os.path.normpath(path)
    return Path(os.path.realpath(clean)) if resolve else Path(clean)


def _roots(roots: list[Path], resolve: bool) -> list[Path]:
    """The roots as given and (a root that is a symlink here) where they lead."""
    real = [Path(os.path.realpath(r)) for r in roots]
    return real if resolve else roots + real


def check_target_allowed(url: str, options: dict[str, Any], settings: Settings, *,
                         resolve: bool = False) -> None:
    """Raise InvalidInput (naming the setting to change) unless the target's directory,
    S3 endpoint and password file are allowed. ``resolve``: follow symlinks (on the host
    whose files these are — the workers)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        roots = settings.target_roots
        path = _real(unquote(parts.path), resolve)
        if not roots:
            raise InvalidInput(
                f"file:// targets are not enabled ({redact(url)})",
                "list the directories targets may live in: VOLKEEPER_ALLOWED_TARGET_ROOTS="
                "/srv/backups (on the API and the workers)")
        if not _inside(path, _roots(roots, resolve)):
            raise InvalidInput(
                f"target directory {path} is outside the allowed roots "
                f"({', '.join(map(str, roots))})",
                "use a directory below one of them, or add its parent to "
                "VOLKEEPER_ALLOWED_TARGET_ROOTS (on the API and the workers)")
    if scheme == "s3" and options.get("endpoint_url") is not None:
        ep = urlsplit(str(options["endpoint_url"]))
        host = (ep.hostname or "").lower()
        try:
            port = ep.port
        except ValueError:
            port = None
        allowed = settings.s3_endpoints
        given = f"{host}:{port}" if port else host
        if not any(a in (host, given) or (port is None and a.split(":")[0] == host
                                          and a.endswith(":443" if ep.scheme == "https"
                                                         else ":80"))
                   for a in allowed):
            raise InvalidInput(
                f"S3 endpoint {given!r} is not allowed",
                "without VOLKEEPER_ALLOWED_S3_ENDPOINTS only AWS (no endpoint_url) is; add "
                f"'{given}' to it (comma-separated host[:port], on the API and the workers)")
    pf = options.get("password_file")
    if pf is not None:
        dirs = settings.password_dirs
        path = _real(str(pf), resolve)
        if not _inside(path, _roots(dirs, resolve)):
            raise InvalidInput(
                f"password_file {path} is outside the allowed directories "
                f"({', '.join(map(str, dirs))})",
                "put the passphrase file in one of them, or set VOLKEEPER_PASSWORD_FILE_DIR "
                "(on the API and the workers)")
