"""S3 specifics beyond the shared contract, without a server: part size bounds and how
botocore failures map onto our error tree. The prefix, multipart streaming and its
concurrency bound run against moto in ``tests/integration/storage/test_s3_backend.py``."""

from __future__ import annotations

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


def test_an_endpoints_error_message_is_not_echoed_into_the_error() -> None:
    body = "<html>internal admin panel: root password is hunter2</html>"
    for status in (403, 502):
        err = mapped(client_error("AccessDenied<script>", status, body))
        assert "hunter2" not in str(err) and "<script>" not in str(err)
        assert "unrecognised error" in err.message and f"({status})" in err.message
    err = mapped(client_error("SlowDown", 503, body))
    assert "SlowDown (503)" in err.message and "hunter2" not in str(err)
