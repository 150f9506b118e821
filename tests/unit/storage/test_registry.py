"""Target URLs: validation, redaction, and which backend (with which wrappers) they open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.errors import InvalidInput
from common.storage.local import LocalBackend
from common.storage.memory import MemoryBackend
from common.storage.registry import open_backend, redact, validate_target_url
from common.storage.wrappers import RateLimitedBackend, RetryingBackend


def settings(**kw: Any) -> Settings:
    return Settings(home=Path("/nonexistent-home"), **kw)


@pytest.mark.parametrize(
    ("url", "options", "fragment"),
    [
        ("ftp://host/x", {}, "unsupported target URL"),
        ("/srv/backups", {}, "unsupported target URL"),
        ("file://relative/path", {}, "not an absolute file URL"),
        ("file:relative", {}, "not an absolute file URL"),
        ("s3://", {}, "names no bucket"),
        ("s3:///prefix", {}, "names no bucket"),
        ("s3://bad bucket!/x", {}, "not a valid S3 bucket name"),
        ("s3://bucket/x", {"colour": "blue"}, "unknown option(s) colour"),
        ("file:///srv", {"region": "eu"}, "unknown option(s) region"),
        ("s3://bucket", {"path_style": "maybe"}, "'path_style' must be true or false"),
        ("s3://bucket", {"part_size": 1024}, "'part_size' is 1024"),
        ("s3://bucket", {"part_size": "lots"}, "must be a number of bytes"),
        ("s3://bucket", {"endpoint_url": "minio:9000"}, "not an http(s) URL"),
        ("s3://bucket", {"endpoint_url": "http://u:p@minio:9000"}, "contains credentials"),
        ("s3://bucket?x=1", {}, "query or fragment"),
        ("memory://", {}, "has no name"),
    ],
)
def test_invalid_target_urls_are_rejected_with_a_reason(
    url: str, options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidInput) as e:
        validate_target_url(url, options)
    assert fragment in e.value.message
    assert e.value.hint or "option" in e.value.message


def test_credentials_in_a_url_are_rejected_without_echoing_them() -> None:
    with pytest.raises(InvalidInput) as e:
        validate_target_url("s3://AKIAXYZ:topsecret@bucket/x", {})
    assert "topsecret" not in str(e.value)
    assert "secrets" in str(e.value)


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/backups",
        "file://localhost/srv/backups",
        "s3://bucket",
        "s3://my.bucket-1/some/prefix/",
        "memory://tests",
    ],
)
def test_valid_target_urls_pass(url: str) -> None:
    validate_target_url(url, {})


def test_redact_hides_user_info_and_query() -> None:
    assert redact("s3://key:secret@bucket/p?token=abc") == "s3://***@bucket/p?***"
    assert redact("file:///srv/b") == "file:///srv/b"


def test_a_file_url_opens_a_retrying_local_backend(tmp_path: Path) -> None:
    backend = open_backend(f"file://{tmp_path}/t%20x", {}, {}, settings(storage_retries=4))
    assert isinstance(backend, RetryingBackend)
    assert backend.attempts == 4
    assert isinstance(backend.inner, LocalBackend)
    assert backend.inner.root == tmp_path / "t x"
    backend.put_bytes("a", b"1")
    assert (tmp_path / "t x" / "a").read_bytes() == b"1"


def test_a_bandwidth_limit_adds_a_rate_limiter_inside_the_retries() -> None:
    backend = open_backend("memory://limited", {}, {}, settings(bandwidth_limit=1_000_000))
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, RateLimitedBackend)
    assert backend.inner.bucket.rate == 1_000_000


def test_memory_urls_name_one_shared_backend_per_process() -> None:
    a = open_backend("memory://shared-reg", {}, {}, settings(storage_retries=1))
    b = open_backend("memory://shared-reg", {}, {}, settings(storage_retries=1))
    assert isinstance(a, MemoryBackend)
    a.put_bytes("k", b"v")
    assert b.get_bytes("k") == b"v"
    assert a is b


@pytest.mark.parametrize(
    "secrets",
    [{"access_key_id": "AKIA-only"}, {"secret_access_key": "s3cr3t-only"}, {"password": "pw-123"}],
)
def test_incomplete_or_unknown_s3_secrets_are_rejected(secrets: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as e:
        open_backend("s3://bucket", {}, secrets, settings())
    for value in secrets.values():
        assert value not in str(e.value)
