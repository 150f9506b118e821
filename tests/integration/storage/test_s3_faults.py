"""S3 failures against an S3 HTTP endpoint (moto): a missing bucket, failing part uploads
(injected), a broken download, an object replaced mid-download. Unreachable endpoints and
the retry and bandwidth wrappers are unit-tested (``tests/unit/storage/test_faults.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from common.errors import PermanentStorageError
from common.storage.s3 import S3Backend
from common.storage.wrappers import RetryingBackend
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.integration


MiB = 1024 * 1024
SECRET = "wJalrXUtnFEMI-very-secret-value"


def s3_backend(server: S3Server, bucket: str, **kwargs: Any) -> S3Backend:
    args = server.backend_kwargs(bucket) | {"secret_access_key": SECRET, "part_size": 5 * MiB}
    args.update(kwargs)
    return S3Backend(**args)


def fail_part(backend: S3Backend, part: int, code: str, status: int, times: int) -> list[int]:
    """Make UploadPart number ``part`` answer ``code``/``status`` ``times`` times."""
    calls: list[int] = []

    def handler(params: dict[str, Any], **_: Any) -> Any:
        number = params["query_string"]["partNumber"]
        calls.append(int(number))
        if int(number) == part and calls.count(part) <= times:
            http = AWSResponse("http://fake", status, HTTPHeaders(), None)
            return http, {
                "Error": {"Code": code, "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }
        return None

    backend.client.meta.events.register("before-call.s3.UploadPart", handler)
    return calls


def test_a_missing_bucket_is_a_permanent_error_naming_the_bucket(s3_server: S3Server) -> None:
    sleeps: list[float] = []
    s3 = s3_backend(s3_server, "no-such-bucket-here")
    backend = RetryingBackend(s3, attempts=3, base_delay=0.001, sleep=sleeps.append)
    for op in (
        backend.check,
        lambda: backend.stat("some/key"),
        lambda: backend.open_reader("some/key"),
        lambda: backend.put_bytes("some/key", b"x"),
        lambda: backend.delete("some/key"),
    ):
        with pytest.raises(PermanentStorageError) as e:
            op()
        assert "no-such-bucket-here" in e.value.message
        assert "does not exist" in e.value.message
        assert e.value.hint and "bucket name" in e.value.hint
        assert SECRET not in str(e.value)
    assert sleeps == []  # permanent errors are not retried


def test_a_permanently_failing_part_aborts_the_multipart_upload(
    s3_server: S3Server, s3_bucket: str
) -> None:
    s3 = s3_backend(s3_server, s3_bucket, concurrency=2, retry_base_delay=0.001)
    calls = fail_part(s3, part=2, code="AccessDenied", status=403, times=99)
    with pytest.raises(PermanentStorageError) as e, s3.open_writer("obj") as w:
        for _ in range(4):  # the failure surfaces in a later write or at commit
            w.write(bytes(5 * MiB))
        w.commit()
    assert "access denied" in e.value.message
    assert "uploading part 2 of 'obj'" in e.value.message
    assert calls.count(2) == 1  # permanent: not retried
    client = s3_server.client()
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []


def test_a_transiently_failing_part_is_retried_and_the_object_completes(
    s3_server: S3Server, s3_bucket: str
) -> None:
    s3 = s3_backend(s3_server, s3_bucket, concurrency=2, retry_base_delay=0.001)
    calls = fail_part(s3, part=2, code="SlowDown", status=503, times=2)
    data = bytes(range(256)) * (11 * MiB // 256)
    info = s3.put_bytes("obj", data)
    assert info.size == len(data)
    assert calls.count(2) == 3
    assert s3.get_bytes("obj") == data
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="obj")
    assert head["ETag"].strip('"').endswith("-3")  # really multipart: 5 + 5 + 1 MiB


def test_a_broken_download_resumes_where_it_stopped(s3_server: S3Server, s3_bucket: str) -> None:
    s3 = s3_backend(s3_server, s3_bucket, retry_base_delay=0.001)
    data = bytes(range(256)) * 4096
    s3.put_bytes("obj", data)
    with s3.open_reader("obj") as r:
        head = r.read(100_000)
        r._body.close()  # type: ignore[attr-defined] # the connection drops mid-object
        rest = r.read(len(data))
    assert head + rest == data


def test_a_read_of_an_object_replaced_mid_download_fails_permanently(
    s3_server: S3Server, s3_bucket: str
) -> None:
    s3 = s3_backend(s3_server, s3_bucket, retry_base_delay=0.001)
    s3.put_bytes("obj", b"a" * 200_000)
    with s3.open_reader("obj") as r:
        r.read(10)
        s3.put_bytes("obj", b"b" * 200_000)
        r._body.close()  # type: ignore[attr-defined]
        with pytest.raises(PermanentStorageError) as e:
            r.read(100)
    assert "changed while it was being read" in e.value.message

