"""Maps a target URL to a backend and composes the wrappers around it.

Schemes: ``file:///abs/path`` (LocalBackend), ``s3://bucket/prefix`` (S3Backend) and
``memory://name`` (a process-global MemoryBackend per name, for tests and demos).
The result is ``RetryingBackend(RateLimitedBackend(backend))``; the limiter is present only
when ``settings.bandwidth_limit`` is set. Retrying outermost means a retried ``put_bytes``
goes through the limiter again, as its bytes do cross the wire again.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from common.config import Settings
from common.errors import InvalidInput
from common.hashes import use_openssl
from common.storage.base import Backend
from common.storage.local import LocalBackend
from common.storage.memory import MemoryBackend
from common.storage.wrappers import RateLimitedBackend, RetryingBackend

SCHEMES = ("file", "s3", "memory")
#: Options every target may have: ``password_file`` is a path on the worker hosts holding
#: the passphrase of the target's native repository (read by the workers, never stored).
COMMON_OPTIONS = frozenset({"password_file"})
OPTIONS: dict[str, frozenset[str]] = {
    "file": COMMON_OPTIONS,
    "memory": COMMON_OPTIONS,
    "s3": COMMON_OPTIONS | {"endpoint_url", "region", "path_style", "part_size"},
}
SECRETS: dict[str, frozenset[str]] = {
    "file": frozenset(),
    "memory": frozenset(),
    "s3": frozenset({"access_key_id", "secret_access_key", "session_token"}),
}
MAX_PART_SIZE = 5 * 1024**3
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}

_memory_backends: dict[str, MemoryBackend] = {}
_memory_lock = threading.Lock()


def redact(url: str) -> str:
    """The URL without user info (credentials) and query string, safe to show and log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def memory_backend(name: str) -> MemoryBackend:
    """The process-global MemoryBackend called ``name`` (created on first use)."""
    with _memory_lock:
        if name not in _memory_backends:
            _memory_backends[name] = MemoryBackend(name)
        return _memory_backends[name]


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise InvalidInput(f"option {name!r} must be true or false, not {value!r}")


def _s3() -> ModuleType:
    """``common.storage.s3`` (boto3), imported once an S3 target is named; OpenSSL's hashes
    first where a one-shot command left them out (``common.hashes``): botocore signs every
    payload with SHA-256 over plain HTTP."""
    use_openssl()
    from common.storage import s3

    return s3


def _parse_part_size(value: Any) -> int:
    min_size = _s3().MIN_PART_SIZE  # boto3 only once an S3 target is named

    try:
        size = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"option 'part_size' must be a number of bytes, not {value!r}") from None
    if isinstance(value, bool) or not min_size <= size <= MAX_PART_SIZE:
        raise InvalidInput(
            f"option 'part_size' is {value!r}",
            f"S3 parts must be between {min_size} (5 MiB) and {MAX_PART_SIZE} (5 GiB) bytes",
        )
    return size


def validate_target_url(url: str, options: dict[str, Any] | None = None) -> None:
    """Raise InvalidInput (with a hint) unless ``url`` and ``options`` describe a target."""
    options = options or {}
    shown = redact(url)
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise InvalidInput(f"target URL {shown} cannot be parsed: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidInput(
            f"unsupported target URL {shown!r}",
            "use file:///absolute/path for a directory or s3://bucket/prefix for S3",
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            f"target URL {shown!r} contains credentials",
            "put access keys in the target's secrets, not in its URL",
        )
    if parts.query or parts.fragment:
        raise InvalidInput(
            f"target URL {shown!r} has a query or fragment", "use options for settings"
        )
    unknown = sorted(set(options) - OPTIONS[scheme])
    if unknown:
        allowed = ", ".join(sorted(OPTIONS[scheme])) or "none"
        raise InvalidInput(
            f"unknown option(s) {', '.join(unknown)} for a {scheme}:// target",
            f"allowed options: {allowed}",
        )
    if "password_file" in options:
        pf = options["password_file"]
        if not isinstance(pf, str) or not pf.startswith("/") or "\x00" in pf:
            raise InvalidInput(
                f"option 'password_file' must be an absolute path, not {pf!r}",
                "name a file on the worker hosts, e.g. /etc/volkeeper/repo.key")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidInput(
                f"target URL {shown!r} is not an absolute file URL",
                "write a directory as file:///absolute/path (three slashes)",
            )
    elif scheme == "memory":
        if not parts.netloc:
            raise InvalidInput(f"target URL {shown!r} has no name", "write memory://name")
    else:
        if not parts.netloc:
            raise InvalidInput(
                f"target URL {shown!r} names no bucket", "write s3://bucket or s3://bucket/prefix"
            )
        if not _BUCKET.match(parts.netloc):
            raise InvalidInput(
                f"{parts.netloc!r} is not a valid S3 bucket name",
                "bucket names are 3-63 letters, digits, dots and hyphens",
            )
        if "path_style" in options:
            _parse_bool("path_style", options["path_style"])
        if "part_size" in options:
            _parse_part_size(options["part_size"])
        endpoint = options.get("endpoint_url")
        if endpoint is not None:
            ep = urlsplit(str(endpoint))
            if ep.scheme not in ("http", "https") or not ep.hostname:
                raise InvalidInput(
                    f"option 'endpoint_url' {redact(str(endpoint))!r} is not an http(s) URL",
                    "write it like https://minio.example.com:9000",
                )
            if ep.username is not None or ep.password is not None:
                raise InvalidInput(
                    "option 'endpoint_url' contains credentials",
                    "put access keys in the target's secrets",
                )


def storage_location(url: str, options: dict[str, Any] | None = None
                     ) -> tuple[str, tuple[str, ...]]:
    """Where a target's objects live, for comparing targets: the store (a file system, an
    S3 endpoint and bucket, a memory backend) and the path inside it as components."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    path = unquote(parts.path)
    if scheme == "file":
        store = "file"
        path = os.path.normpath(path)
    elif scheme == "s3":
        endpoint = (options or {}).get("endpoint_url")
        where = "aws"
        if endpoint:
            ep = urlsplit(str(endpoint))
            try:
                port = ep.port
            except ValueError:
                port = None
            port = port or (443 if ep.scheme == "https" else 80)
            where = f"{(ep.hostname or '').lower()}:{port}"
        store = f"s3:{where}:{parts.netloc}"
    else:
        store, path = f"{scheme}:{parts.netloc}", path
    return store, tuple(p for p in path.split("/") if p)


def shares_storage(a: tuple[str, tuple[str, ...]], b: tuple[str, tuple[str, ...]]) -> bool:
    """Whether two targets' objects (each under its ``volkeeper/`` prefix) can meet: the
    same location, or one inside the other's ``volkeeper/``. Each would then list, prune,
    repair, forget or migrate the other's data as its own."""
    (store_a, path_a), (store_b, path_b) = a, b
    if store_a != store_b:
        return False
    if path_a == path_b:
        return True
    inner, outer = (path_a, path_b) if len(path_a) > len(path_b) else (path_b, path_a)
    data = (*outer, "volkeeper")
    return inner[:len(data)] == data


def _validate_secrets(scheme: str, secrets: dict[str, Any]) -> None:
    unknown = sorted(set(secrets) - SECRETS[scheme])
    if unknown:
        raise InvalidInput(
            f"unknown secret(s) {', '.join(unknown)} for a {scheme}:// target",
            f"allowed secrets: {', '.join(sorted(SECRETS[scheme])) or 'none'}",
        )
    if scheme == "s3" and bool(secrets.get("access_key_id")) != bool(
        secrets.get("secret_access_key")
    ):
        raise InvalidInput(
            "an S3 target needs both access_key_id and secret_access_key, or neither",
            "with neither, boto3's default credential chain (env, ~/.aws, IAM role) is used",
        )


def open_backend(
    url: str, options: dict[str, Any], secrets: dict[str, Any], settings: Settings
) -> Backend:
    """A ready backend for a target URL, wrapped in retry and (if set) bandwidth limit."""
    validate_target_url(url, options)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    _validate_secrets(scheme, secrets)
    backend: Backend
    if scheme == "file":
        backend = LocalBackend(Path(unquote(parts.path)))
    elif scheme == "memory":
        backend = memory_backend(parts.netloc + parts.path.rstrip("/"))
    else:
        backend = _s3().S3Backend(
            bucket=parts.netloc,
            prefix=unquote(parts.path).strip("/"),
            endpoint_url=options.get("endpoint_url"),
            region=options.get("region"),
            access_key_id=secrets.get("access_key_id") or None,
            secret_access_key=secrets.get("secret_access_key") or None,
            session_token=secrets.get("session_token") or None,
            path_style=_parse_bool("path_style", options.get("path_style", False)),
            part_size=_parse_part_size(options.get("part_size", settings.s3_part_size)),
            concurrency=settings.s3_upload_concurrency,
            retry_attempts=settings.storage_retries,
        )
    if settings.bandwidth_limit:
        backend = RateLimitedBackend(backend, settings.bandwidth_limit)
    if settings.storage_retries > 1:
        backend = RetryingBackend(backend, attempts=settings.storage_retries)
    return backend
