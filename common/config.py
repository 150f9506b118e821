"""The one Settings object, read from ``VOLKEEPER_*`` environment variables.

Two modes follow from it: *fleet* when ``VOLKEEPER_DATABASE_URL`` and ``VOLKEEPER_REDIS_URL``
are set (PostgreSQL history, Redis broker and progress), *embedded* otherwise (SQLite under
``VOLKEEPER_HOME``, in-process worker, in-memory progress).
"""

from __future__ import annotations

import os
import re
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from common.formats import BackupFormat

#: the target embedded mode creates at ``$VOLKEEPER_HOME/backups`` on its first run, and
#: the default of VOLKEEPER_DEFAULT_TARGET; another default must be a registered target
BUILTIN_TARGET = "local"

ENV_PREFIX = "VOLKEEPER_"


class Settings(BaseModel):
    """Every configuration knob of volkeeper. Field docs are the README's reference.

    ``Settings()`` reads ``VOLKEEPER_<FIELD>`` (any case) from the environment; keyword
    arguments override it (``Settings(home=tmp)``). Every field is a scalar, validated
    from the variable's text as pydantic does (``true``/``1``, numbers, paths): what
    pydantic-settings did, without its import (~7 MiB and ~40 ms of every command)."""

    # built once below, without pydantic's plugin discovery (see there)
    model_config = ConfigDict(extra="ignore", validate_default=True, defer_build=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**(_environment() | values))

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
        default=None, description="Bootstrap admin token of the API (named \"admin\"; "
        "mandatory in fleet mode). Embedded mode creates `<home>/api.token` when unset."
    )
    allowed_hosts: str = Field(
        default="*", description="Fleet: Host header names the API answers (comma-separated; "
        "`*` any). Embedded mode answers 127.0.0.1, localhost and [::1] only (DNS rebinding).")
    allowed_target_roots: str | None = Field(
        default=None, description="Directories `file://` targets may live in (colon- or "
        "comma-separated absolute paths). Default: embedded, VOLKEEPER_HOME and below; fleet, "
        "none (file:// targets are refused until this is set).")
    allowed_s3_endpoints: str | None = Field(
        default=None, description="S3 endpoints targets may name in `endpoint_url` "
        "(comma-separated host[:port]; a host without port allows any port). Default: none, "
        "i.e. AWS only (endpoint_url unset).")
    password_file_dir: str | None = Field(
        default=None, description="Directories a target's `password_file` must be inside "
        "(colon- or comma-separated). Default: /etc/volkeeper and VOLKEEPER_HOME.")
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
    default_target: str = Field(
        default=BUILTIN_TARGET, description="Target used when none is named: a registered "
        "target (embedded mode creates `local` at VOLKEEPER_HOME/backups by itself).")
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
    requeue_seconds: float = Field(
        default=120.0,
        description="A queued job no worker has started after this long has its task "
        "message sent again, and again every so long (fleet: a Redis restart loses the "
        "messages waiting in it); a worker drops the duplicate of a job that already runs.",
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
    #: zstd level of ``tar.zst`` archives: 1 costs ~60% of level 3's CPU for ~2% more bytes
    #: on the benchmark's mixed volume (benchmarks/RESULTS.md)
    zstd_level: int = 1
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
    notify_urls: str = Field(
        default="", description="Where notifications go (comma- or space-separated): "
        "`https://…`/`http://…` URLs get volkeeper's JSON webhook (signed with "
        "VOLKEEPER_NOTIFY_WEBHOOK_SECRET); any other scheme (`slack://`, `discord://`, "
        "`ntfy://`, `mailto://` …) is an Apprise URL, used when the optional `apprise` "
        "package is installed (`pip install 'volkeeper[notify]'`).")
    notify_webhook_secret: SecretStr | None = Field(
        default=None, description="Key of the webhooks' `X-Volkeeper-Signature: "
        "sha256=HMAC` header (HMAC-SHA256 over the request body). Unset: unsigned.")
    notify_smtp_host: str | None = Field(
        default=None, description="SMTP server for e-mail notifications (unset: no e-mail).")
    notify_smtp_port: int = Field(default=587, description="SMTP port.")
    notify_smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls", description="SMTP transport security: starttls (default), ssl "
        "(implicit TLS, usually port 465) or none (a relay on localhost only).")
    notify_smtp_user: str | None = Field(default=None, description="SMTP login (optional).")
    notify_smtp_password: SecretStr | None = Field(
        default=None, description="SMTP password (never logged).")
    notify_smtp_from: str = Field(default="volkeeper@localhost",
                                  description="Sender of notification e-mails.")
    notify_smtp_to: str = Field(default="", description="Recipients of notification "
                                "e-mails (comma-separated).")
    notify_min_interval_seconds: float = Field(
        default=300.0, description="Rate limit: at most one message per watched subject "
        "(a volume's backups, verifications, drills, freshness) in this window; a change "
        "within it is sent when the window ends, if it still holds then.")
    rpo_check_seconds: float = Field(
        default=60.0, gt=0, description="How often the active scheduler checks each "
        "policy volume's newest good backup against its RPO (overdue and recovered "
        "notifications).")
    metrics_token: SecretStr | None = Field(
        default=None, description="A scrape-only bearer token for `GET /metrics` (any API "
        "token works too). See VOLKEEPER_METRICS_PUBLIC.")
    metrics_public: bool = Field(
        default=False, description="Serve `GET /metrics` without a token (only on a network "
        "where volume and host names are not sensitive).")
    key_cache_ttl: int = Field(
        default=86400, ge=0, description="Embedded mode: seconds a repository key file's "
        "derived key stays cached in `<home>/keys.cache` (0600, sealed with the "
        "installation's secret key) so the next command skips the deliberately slow scrypt; "
        "0 turns the cache off. Every command still needs the passphrase: an entry is found "
        "only with it.")
    short_reads: bool = Field(
        default=True, description="Embedded mode: `volumes`, `backups` and `jobs` read the "
        "SQLite catalog directly (no SQLAlchemy) when nothing is to set up or clean up and, "
        "for `volumes`, the host's volumes changed in nothing but their sizes; false: they "
        "take the full start of every other command (same output, ~2x the time).")
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
    def target_roots(self) -> list[Path]:
        """Where ``file://`` targets may live (absolute, normalised)."""
        if self.allowed_target_roots is not None:
            return _paths(self.allowed_target_roots)
        return [_norm(self.home)] if self.mode == "embedded" else []

    @property
    def password_dirs(self) -> list[Path]:
        """Where a target's ``password_file`` may live (absolute, normalised)."""
        if self.password_file_dir is not None:
            return _paths(self.password_file_dir)
        return [Path("/etc/volkeeper"), _norm(self.home)]

    @property
    def s3_endpoints(self) -> list[str]:
        """The allowed ``endpoint_url`` hosts, ``host`` or ``host:port``, lower case."""
        return [e.strip().lower() for e in re.split(r"[,\s]+", self.allowed_s3_endpoints or "")
                if e.strip()]

    @property
    def host_names(self) -> list[str] | None:
        """Fleet: the Host header names the API answers (None: any)."""
        names = [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]
        return None if not names or "*" in names else names

    @property
    def notify_url_list(self) -> list[str]:
        return [u for u in re.split(r"[,\s]+", self.notify_urls) if u]

    @property
    def smtp_recipients(self) -> list[str]:
        return [a.strip() for a in self.notify_smtp_to.split(",") if a.strip()]

    @property
    def notifications_on(self) -> bool:
        """Whether any notification channel is configured (else nothing is observed or
        sent: ``common.notify`` need not load)."""
        return bool(self.notify_url_list) or bool(self.notify_smtp_host and self.smtp_recipients)

    @property
    def default_target_url(self) -> str:
        return (self.home / "backups").resolve().as_uri()

    @property
    def creates_default_target(self) -> bool:
        """Whether embedded mode creates the default target itself (the built-in
        ``local``): any other name must be registered (a typo is an error, not a second
        name for ``$VOLKEEPER_HOME/backups``)."""
        return self.default_target == BUILTIN_TARGET


def _build_settings_model() -> None:
    """Build the model's validator with pydantic's plugins off: looking for them reads the
    metadata of every installed distribution (~10-20 ms of every command); settings are
    nothing a validation plugin has to see. Typer builds its converters the same way."""
    previous = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    try:
        Settings.model_rebuild(force=True)
    finally:
        if previous is None:
            del os.environ["PYDANTIC_DISABLE_PLUGINS"]
        else:
            os.environ["PYDANTIC_DISABLE_PLUGINS"] = previous


_build_settings_model()


def _environment() -> dict[str, str]:
    """The ``VOLKEEPER_*`` variables naming a field, by field name (names in any case)."""
    fields = Settings.model_fields
    found = {}
    for key, value in os.environ.items():
        if key[:len(ENV_PREFIX)].upper() == ENV_PREFIX:
            name = key[len(ENV_PREFIX):].lower()
            if name in fields:
                found[name] = value
    return found


def _norm(path: Path | str) -> Path:
    return Path(os.path.normpath(os.path.abspath(os.path.expanduser(str(path)))))


def _paths(value: str) -> list[Path]:
    """Absolute directories from a colon- or comma-separated list (relative ones dropped)."""
    return [_norm(p) for p in re.split(r"[:,]", value) if p.strip().startswith(("/", "~"))]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import time)."""
    return Settings()
