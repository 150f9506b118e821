"""S3 specifics beyond the shared contract: the prefix, multipart streaming and its
concurrency bound, and how botocore failures map onto our error tree."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from common.errors import InvalidInput, PermanentStorageError, StorageError, TransientStorageError
from common.storage.s3 import S3Backend, map_s3_error
from tests.fixtures.s3 import S3Server
from tests.fixtures.util import wait_for

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


def test_a_part_size_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(InvalidInput, match="too small"):
        S3Backend("b", part_size=1024)


# -- error mapping --------------------------------------------------------------------------


def client_error(code: str, status: int, message: str = "msg") -> Exception:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


def mapped(e: Exception, key: str | None = "k") -> StorageError:
    return map_s3_error(e, "reading", "s3://bkt/pre", "bkt", "http://minio:9000", key)


@pytest.mark.parametrize(
    ("code", "status", "hint_word"),
    [
        ("NoSuchBucket", 404, "bucket name"),
        ("AccessDenied", 403, "credentials"),
        ("403", 403, "credentials"),
        ("InvalidAccessKeyId", 403, "access_key_id"),
        ("SignatureDoesNotMatch", 403, "secret_access_key"),
        ("PermanentRedirect", 301, "region"),
        ("InvalidArgument", 400, "options"),
    ],
)
def test_client_errors_that_will_not_heal_are_permanent_with_a_hint(
    code: str, status: int, hint_word: str
) -> None:
    err = mapped(client_error(code, status))
    assert isinstance(err, PermanentStorageError)
    assert "s3://bkt/pre" in err.message and "'k'" in err.message
    assert err.hint and hint_word in err.hint


@pytest.mark.parametrize(
    ("code", "status"),
    [("SlowDown", 503), ("InternalError", 500), ("Whatever", 502), ("TooManyRequests", 429)],
)
def test_throttling_and_server_errors_are_transient(code: str, status: int) -> None:
    assert isinstance(mapped(client_error(code, status)), TransientStorageError)


def test_a_bare_404_without_a_key_means_the_bucket_is_missing() -> None:
    err = mapped(client_error("404", 404), key=None)
    assert isinstance(err, PermanentStorageError)
    assert "bucket 'bkt' does not exist" in err.message


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://minio:9000"),
        ConnectTimeoutError(endpoint_url="http://minio:9000"),
        ReadTimeoutError(endpoint_url="http://minio:9000"),
        ConnectionResetError("reset by peer"),
    ],
)
def test_network_failures_are_transient_and_name_the_endpoint(exc: Exception) -> None:
    err = mapped(exc)
    assert isinstance(err, TransientStorageError)
    assert "http://minio:9000" in err.message


def test_missing_credentials_are_permanent() -> None:
    err = mapped(NoCredentialsError())
    assert isinstance(err, PermanentStorageError)
    assert "no S3 credentials" in err.message
