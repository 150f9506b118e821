"""The S3 backend against an S3 HTTP endpoint (moto): the prefix, multipart streaming and its
concurrency bound, and an ``s3://`` target URL opening a configured backend. How botocore
failures map onto our error tree is unit-tested in ``tests/unit/storage/test_s3.py``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.storage.registry import open_backend
from common.storage.s3 import S3Backend
from common.storage.wrappers import RetryingBackend
from tests.fixtures.s3 import S3Server
from tests.fixtures.util import wait_for

pytestmark = pytest.mark.integration


MiB = 1024 * 1024


def make(server: S3Server, bucket: str, **kw: Any) -> S3Backend:
    return S3Backend(**(server.backend_kwargs(bucket) | {"part_size": 5 * MiB} | kw))


def test_keys_live_under_the_prefix_and_nothing_outside_it_is_listed(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="other/thing", Body=b"x")
    client.put_object(Bucket=s3_bucket, Key="team-b/thing", Body=b"x")
    s3 = make(s3_server, s3_bucket, prefix="/team/")
    s3.put_bytes("vol/a", b"1")
    assert s3.display == f"s3://{s3_bucket}/team"
    assert [i.key for i in s3.list()] == ["vol/a"]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == ["other/thing", "team-b/thing", "team/vol/a"]


def test_parts_stream_up_before_commit_with_bounded_concurrency(
    s3_server: S3Server, s3_bucket: str
) -> None:
    s3 = make(s3_server, s3_bucket, concurrency=2)
    active = 0
    peak = 0
    lock = threading.Lock()

    def before(**_: Any) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)

    def after(**_: Any) -> None:
        nonlocal active
        with lock:
            active -= 1

    s3.client.meta.events.register("before-call.s3.UploadPart", before)
    s3.client.meta.events.register("after-call.s3.UploadPart", after)
    client = s3_server.client()
    with s3.open_writer("big") as w:
        for _ in range(5):
            w.write(bytes(5 * MiB))

        def parts_uploaded() -> bool:
            uploads = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
            if len(uploads) != 1:
                return False
            up = uploads[0]
            parts = client.list_parts(Bucket=s3_bucket, Key=up["Key"], UploadId=up["UploadId"])
            return len(parts.get("Parts", [])) == 5

        wait_for(parts_uploaded, 30, "five parts uploaded before commit")
        assert client.list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []
        w.write(b"tail")
        info = w.commit()
    assert info.size == 25 * MiB + 4
    assert 1 <= peak <= 2
    head = client.head_object(Bucket=s3_bucket, Key="big")
    assert head["ContentLength"] == 25 * MiB + 4
    assert head["ETag"].strip('"').endswith("-6")


def test_an_object_smaller_than_a_part_is_one_put(s3_server: S3Server, s3_bucket: str) -> None:
    s3 = make(s3_server, s3_bucket)
    ops: list[str] = []
    s3.client.meta.events.register("before-call.s3.*", lambda model, **_: ops.append(model.name))
    s3.put_bytes("small", bytes(5 * MiB - 1))
    assert ops == ["PutObject"]



def settings(**kw: Any) -> Settings:
    return Settings(home=Path("/nonexistent-home"), **kw)


def test_an_s3_url_opens_a_configured_s3_backend(s3_server: S3Server, s3_bucket: str) -> None:
    backend = open_backend(
        f"s3://{s3_bucket}/team/a",
        {"endpoint_url": s3_server.endpoint_url, "path_style": "true", "part_size": 8 << 20},
        {"access_key_id": "k", "secret_access_key": "s"},
        settings(s3_upload_concurrency=3),
    )
    assert isinstance(backend, RetryingBackend)
    s3 = backend.inner
    assert isinstance(s3, S3Backend)
    assert (s3.bucket, s3.prefix, s3.part_size, s3.concurrency) == (s3_bucket, "team/a", 8 << 20, 3)
    assert s3.display == f"s3://{s3_bucket}/team/a"
    backend.put_bytes("x/y", b"hello")
    obj = s3_server.client().get_object(Bucket=s3_bucket, Key="team/a/x/y")
    assert obj["Body"].read() == b"hello"

