"""The one Settings object, read from ``VOLKEEPER_*`` environment variables.

Two modes follow from it: *fleet* when ``VOLKEEPER_DATABASE_URL`` and ``VOLKEEPER_REDIS_URL``
are set (PostgreSQL history, Redis broker and progress), *embedded* otherwise (SQLite under
``VOLKEEPER_HOME``, in-process worker, in-memory progress).
"""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.formats import BackupFormat


class Settings(BaseSettings):
    """Every configuration knob of volkeeper. Field docs are the README's reference."""

    model_config = SettingsConfigDict(env_prefix="VOLKEEPER_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".volkeeper",
        description="State directory in embedded mode: SQLite database and default target.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the job-history database (fleet)."
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL: Celery broker and live progress (fleet)."
    )
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token the API requires (mandatory in fleet mode)."
    )
    bind: str = Field(default="127.0.0.1", description="Address `volkeeper serve` listens on.")
    port: int = Field(default=8470, description="Port `volkeeper serve` listens on.")
    server: str | None = Field(
        default=None, description="API URL the CLI talks to; unset = embedded, in-process."
    )
    host_name: str = Field(
        default_factory=socket.gethostname,
        description="Name of this Docker host as the fleet knows it (worker queue host.NAME).",
    )
    docker_host: str | None = Field(
        default=None, description="Docker engine URL for this worker (default: DOCKER_HOST)."
    )
    default_format: BackupFormat = Field(
        default="repo", description="Format of a backup when none is asked for: repo (the "
        "native repository: deduplicated, incremental, encrypted) or tar, tar.gz, tar.zst "
        "(portable archives that restore with plain tar).")
    default_target: str = Field(default="local", description="Target used when none is named.")
    heartbeat_seconds: float = Field(default=10.0, description="Worker heartbeat period.")
    host_offline_after_seconds: float = Field(
        default=45.0, description="A host without heartbeat for this long is offline."
    )
    stale_job_seconds: float = Field(
        default=120.0,
        description="A running job whose worker has not reported for this long is failed.",
    )
    sweep_seconds: float = Field(
        default=15.0, description="How often the API and the agents sweep stale jobs.")
    queued_job_timeout_seconds: float = Field(
        default=6 * 3600.0,
        description="A queued job no worker has started after this long is failed.",
    )
    progress_interval_seconds: float = Field(
        default=0.5, description="How often a running job publishes progress."
    )
    bandwidth_limit: int | None = Field(
        default=None, description="Upper bound on backup/restore throughput, bytes per second."
    )
    storage_retries: int = Field(
        default=5, description="Attempts for a transient storage error before failing."
    )
    s3_part_size: int = Field(default=16 * 1024 * 1024, description="S3 multipart part size.")
    s3_upload_concurrency: int = Field(default=4, description="Parts uploaded in parallel.")
    volume_access: Literal["auto", "direct", "docker-api"] = Field(
        default="auto",
        description="How workers read/write volumes: the mountpoint directly (fast, full "
        "fidelity) or through Docker's archive API (any driver); auto prefers direct.",
    )
    safety_snapshot_hours: float = Field(
        default=72.0, description="How long the safety snapshot of a replace-restore is kept "
        "(the window in which `volkeeper rollback` works).")
    restore_device_nodes: bool = Field(
        default=False, description="Let restores create character and block device nodes "
        "found in a backup (refused by default: a restored device node gives whoever uses "
        "the volume access to the host's device). Fifos are always restored.")
    zstd_level: int = 3
    repository_password: SecretStr | None = Field(
        default=None, description="Passphrase of the native repository in each target "
        "(`--format repo`); set on the workers. Never logged or returned.")
    repository_password_file: Path | None = Field(
        default=None, description="A file on the worker host holding the repository "
        "passphrase (first line); wins over VOLKEEPER_REPOSITORY_PASSWORD. A target's "
        "`password_file` option sets it for that target only.")
    repository_unencrypted: bool = Field(
        default=False, description="Create the native repository unencrypted when no "
        "passphrase is set (never done silently without this).")
    repository_kdf_n: int = Field(
        default=2**17, description="scrypt cost N for new repository key files (a power of "
        "two of at least 2**14; lower values are refused).")
    secret_key: SecretStr | None = Field(
        default=None, description="Key that seals target credentials in the database (a "
        "random string of at least 32 characters, e.g. `openssl rand -hex 32`); the same "
        "value on the API and every worker. Required in fleet mode to store credentials; "
        "embedded mode creates `<home>/secret.key` when unset.")
    log_level: str = "INFO"

    @property
    def mode(self) -> Literal["fleet", "embedded"]:
        return "fleet" if self.database_url else "embedded"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'volkeeper.db'}"

    @property
    def default_target_url(self) -> str:
        return (self.home / "backups").resolve().as_uri()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import time)."""
    return Settings()
