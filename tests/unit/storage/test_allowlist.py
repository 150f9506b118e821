"""Where targets may point: file:// roots, S3 endpoints, password files — checked when a
target is added and again (through symlinks) when a worker opens it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.db import catalog
from common.db.migrate import upgrade
from common.errors import InvalidInput
from common.jobs.context import JobContext
from common.storage.allowlist import check_target_allowed


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(home=tmp_path / "home", host_name="h1", **kw)


def test_embedded_file_targets_default_to_below_volkeeper_home(tmp_path: Path) -> None:
    s = settings(tmp_path)
    check_target_allowed((tmp_path / "home" / "backups").as_uri(), {}, s)
    for url in ("file:///etc", "file:///", (tmp_path / "home-x").as_uri(),
                (tmp_path / "home" / ".." / "elsewhere").as_uri()):
        with pytest.raises(InvalidInput, match="outside the allowed roots") as e:
            check_target_allowed(url, {}, s)
        assert "VOLKEEPER_ALLOWED_TARGET_ROOTS" in str(e.value.hint)


def test_the_fleet_refuses_file_targets_until_roots_are_configured(tmp_path: Path) -> None:
    s = settings(tmp_path, database_url="sqlite://")
    with pytest.raises(InvalidInput, match="not enabled") as e:
        check_target_allowed("file:///srv/backups/a", {}, s)
    assert "VOLKEEPER_ALLOWED_TARGET_ROOTS=" in str(e.value.hint)
    s = settings(tmp_path, database_url="sqlite://", allowed_target_roots="/srv/backups:/mnt")
    check_target_allowed("file:///srv/backups/a", {}, s)
    check_target_allowed("file:///mnt", {}, s)
    with pytest.raises(InvalidInput):
        check_target_allowed("file:///srv/other", {}, s)


def test_s3_endpoints_default_to_aws_only(tmp_path: Path) -> None:
    s = settings(tmp_path)
    check_target_allowed("s3://bucket/p", {}, s)
    for ep in ("http://169.254.169.254", "http://127.0.0.1:9000", "https://minio.lan"):
        with pytest.raises(InvalidInput, match="is not allowed") as e:
            check_target_allowed("s3://bucket/p", {"endpoint_url": ep}, s)
        assert "VOLKEEPER_ALLOWED_S3_ENDPOINTS" in str(e.value.hint)
    s = settings(tmp_path, allowed_s3_endpoints="minio.lan:9000, ceph.lan")
    check_target_allowed("s3://b", {"endpoint_url": "http://minio.lan:9000"}, s)
    check_target_allowed("s3://b", {"endpoint_url": "https://CEPH.lan:8443"}, s)
    with pytest.raises(InvalidInput):
        check_target_allowed("s3://b", {"endpoint_url": "http://minio.lan:9001"}, s)


def test_password_files_must_live_in_the_configured_directories(tmp_path: Path) -> None:
    s = settings(tmp_path)
    check_target_allowed("s3://b", {"password_file": "/etc/volkeeper/repo.key"}, s)
    check_target_allowed("s3://b", {"password_file": str(tmp_path / "home" / "k")}, s)
    for pf in ("/etc/shadow", "/etc/volkeeper/../shadow", "/root/.ssh/id_rsa"):
        with pytest.raises(InvalidInput, match="outside the allowed directories") as e:
            check_target_allowed("s3://b", {"password_file": pf}, s)
        assert "VOLKEEPER_PASSWORD_FILE_DIR" in str(e.value.hint)


def test_a_worker_refuses_a_stored_target_outside_the_roots_even_through_a_symlink(
        tmp_path: Path) -> None:
    ctx = JobContext(settings(tmp_path))
    upgrade(ctx.db)
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tmp_path / "home" / "link"
    link.symlink_to(outside)
    with ctx.db.session() as s:  # rows written before the allowlists (or behind the API)
        catalog.add_target(s, "old", "file:///etc", {}, {})
        catalog.add_target(s, "sneaky", link.as_uri(), {}, {})
        catalog.add_target(s, "pw", (tmp_path / "home" / "t").as_uri(),
                           {"password_file": "/etc/shadow"}, {})
        catalog.ensure_target(s, "local", ctx.settings.default_target_url)
    for name in ("old", "sneaky", "pw"):
        with pytest.raises(InvalidInput, match="outside"):
            ctx.backend(name)
    with pytest.raises(InvalidInput, match="outside"):
        ctx.settings_for("pw")
    ctx.backend("local").close()
    ctx.db.dispose()
