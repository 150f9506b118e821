"""Request and response schemas of the REST API (separate from the database tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.formats import BackupFormat

Format = BackupFormat
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ContainerOut(BaseModel):
    id: str
    name: str
    state: str


class HostOut(BaseModel):
    name: str
    online: bool
    docker_version: str | None
    worker_version: str | None
    last_seen_at: datetime
    inventory_at: datetime | None
    volume_count: int


class VolumeOut(BaseModel):
    host: str
    name: str
    driver: str
    mountpoint: str | None
    size_bytes: int | None
    labels: dict[str, Any]
    containers: list[ContainerOut]
    last_backup_at: datetime | None = None
    seen_at: datetime


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME, max_length=100)
    url: str = Field(min_length=3, examples=["s3://bucket/prefix", "file:///srv/backups"])
    options: dict[str, Any] = Field(
        default_factory=dict, description="endpoint_url, region, path_style, part_size")
    credentials: dict[str, str] = Field(
        default_factory=dict,
        description="access_key_id, secret_access_key — stored, never returned")
    replace: bool = False


class TargetOut(BaseModel):
    name: str
    url: str
    options: dict[str, Any]
    has_credentials: bool
    created_at: datetime
    backup_count: int = Field(default=0, description="backups the catalog knows there")
    stored_bytes: int = Field(default=0, description="their stored bytes (catalog sum; "
                              "repository backups count what each added)")


class BackupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    volume: str = Field(pattern=NAME, max_length=255)
    host: str | None = Field(default=None, max_length=200)
    target: str | None = Field(default=None, max_length=100)
    format: Format | None = None


class RestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backup_id: str = Field(min_length=1, max_length=32)
    into: str | None = Field(default=None, pattern=NAME, max_length=255,
                             description="volume to restore into (default: the original name)")
    host: str | None = Field(default=None, max_length=200,
                             description="host to restore on (default: the backup's host)")
    mode: Literal["new", "replace"] = Field(
        default="new", description="new: into a missing/empty volume; replace: snapshot the "
        "current content, replace it, verify, roll back on failure")
    stop_containers: bool = Field(
        default=False, description="replace: stop running containers using the volume "
        "(always restarted afterwards)")
    paths: list[str] | None = Field(
        default=None, max_length=1000,
        description="restore only these paths (relative to the volume root; a directory "
        "brings everything below it)")

    @field_validator("paths")
    @classmethod
    def _clean_paths(cls, paths: list[str] | None) -> list[str] | None:
        if paths is None:
            return None
        out = []
        for p in paths:
            clean = p.strip().lstrip("/")
            clean = clean[2:] if clean.startswith("./") else clean
            clean = clean.rstrip("/")
            parts = clean.split("/")
            if not clean or "\x00" in clean or any(x in ("", ".", "..") for x in parts):
                raise ValueError(f"invalid path {p!r}: use a path inside the volume such as "
                                 "'db/base' (no '..', no empty segments)")
            out.append(clean)
        return out


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str


class ValidationOut(BaseModel):
    job_id: str
    ok: bool
    plan: str
    backup_id: str
    host: str
    volume: str
    volume_state: str = Field(description="missing | empty | not-empty")
    mode: str = "new"
    stopping: list[str] = []
    restore_bytes: int
    free_bytes: int | None
    containers: list[ContainerOut]
    checks: list[CheckOut]


class BackupOut(BaseModel):
    id: str
    job_id: str | None
    host: str
    volume: str
    target: str
    format: str
    key: str = Field(description="the stored object naming the backup: the archive, or the "
                     "repository snapshot's object")
    manifest_key: str = Field(description="archives: their manifest object (empty for repo "
                              "backups)")
    stored_bytes: int
    logical_bytes: int
    file_count: int
    checksum: str = Field(description="archives: the sha256 of the archive object (empty "
                          "for repo backups)")
    created_at: datetime
    verified_at: datetime | None = None
    verify_status: str | None = Field(default=None, description="ok | ok (structure) | "
                                         "ok (subset) | damaged | null: the last "
                                         "verification's outcome; 'ok' means all data "
                                         "was read back")
    verify_job_id: str | None = None
    kind: str = Field(default="backup", description="backup | safety")
    expires_at: datetime | None = None
    tags: list[str] = []
    pinned: bool = Field(default=False, description="a pinned backup is never forgotten")
    snapshot_id: str | None = Field(default=None, description="repo backups: the id of "
                                    "their snapshot in the target's repository")


class BackupPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add_tags: list[str] = Field(default_factory=list, max_length=50)
    remove_tags: list[str] = Field(default_factory=list, max_length=50)
    pinned: bool | None = None
    host: str | None = Field(default=None, max_length=200, description="repo backups: host "
                             "whose worker writes the change into the snapshot (default: the "
                             "backup's host)")


class CopyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(pattern=NAME, max_length=100, description="destination target")
    host: str | None = Field(default=None, max_length=200,
                             description="host whose worker copies (default: the backup's)")


class TargetJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str | None = Field(default=None, max_length=200, description="host whose worker "
                             "runs the job (default: embedded, this host; fleet, the online "
                             "host that most recently backed up to the target)")


class PruneIn(TargetJobIn):
    dry_run: bool = False


class SnapshotsIn(TargetJobIn):
    adopt: bool = Field(default=False, description="add the snapshots the catalog does not "
                        "know to it as backups (after losing or replacing the database)")


class KeyAddIn(TargetJobIn):
    new_password: str = Field(min_length=1, max_length=1024,
                              description="passphrase of the new key; sent to the worker in "
                              "the task message only, never stored or returned")


class JobOut(BaseModel):
    id: str
    kind: str
    state: str
    host: str
    volume: str
    target: str | None
    backup_id: str | None
    params: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    requested_by: str | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
