"""``read_range`` on S3 against an S3 HTTP endpoint (moto): every backend-wide range test of
``tests/unit/storage/test_ranges.py`` (those taking ``backend``) runs here against S3,
and S3 transfers only the requested bytes."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from common.errors import PermanentStorageError, TransientStorageError
from common.storage.base import Backend
from common.storage.s3 import S3Backend
from common.storage.wrappers import RetryingBackend
from tests.fixtures.s3 import S3Server
from tests.unit.storage import test_ranges as ranges
from tests.unit.storage.test_ranges import DATA, PART

pytestmark = pytest.mark.integration


globals().update(  # the backend-wide tests: every test of the unit module taking ``backend``
    (name, test) for name, test in vars(ranges).items()
    if name.startswith("test_") and callable(test)
    and "backend" in inspect.signature(test).parameters)


@pytest.fixture
def backend(s3_server: S3Server, s3_bucket: str) -> Iterator[Backend]:
    s3 = S3Backend(**s3_server.backend_kwargs(s3_bucket), prefix="pre/fix", part_size=PART)
    yield s3
    s3.close()


# -- S3 transfers only what was asked for --------------------------------------------------


class Wire:
    """Records, per S3 operation, the Range header sent and the bytes the server sent back."""

    def __init__(self, s3: S3Backend) -> None:
        self.operations: list[str] = []
        self.ranges: list[str | None] = []
        self.received: list[int] = []
        events = s3.client.meta.events
        events.register("before-call.s3", self._call)
        events.register("before-send.s3.GetObject", self._send)
        events.register("after-call.s3.GetObject", self._answer)

    def _call(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def _send(self, request: Any, **_: Any) -> None:
        value = request.headers.get("Range")
        self.ranges.append(value.decode() if isinstance(value, bytes) else value)

    def _answer(self, http_response: Any, **_: Any) -> None:
        self.received.append(int(http_response.headers.get("content-length", -1)))


@pytest.fixture
def s3(s3_server: S3Server, s3_bucket: str) -> Iterator[S3Backend]:
    backend = S3Backend(**s3_server.backend_kwargs(s3_bucket), retry_base_delay=0.001)
    yield backend
    backend.close()


def test_an_s3_range_read_asks_for_and_receives_only_the_requested_bytes(s3: S3Backend) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    s3.put_bytes("pack", data)
    wire = Wire(s3)
    assert s3.read_range("pack", 300_000, 1000) == data[300_000:301_000]
    assert s3.read_range("pack", 1_000_000) == data[1_000_000:]
    assert wire.ranges == ["bytes=300000-300999", "bytes=1000000-"]
    assert wire.received == [1000, len(data) - 1_000_000]


def test_an_s3_suffix_read_is_one_get_without_a_stat(s3: S3Backend) -> None:
    data = bytes(range(256)) * 4096
    s3.put_bytes("pack", data)
    wire = Wire(s3)
    assert s3.read_range("pack", -4096) == data[-4096:]
    assert wire.operations == ["GetObject"]
    assert wire.ranges == ["bytes=-4096"]
    assert wire.received == [4096]


def test_an_s3_range_past_the_end_is_empty_not_an_error(s3: S3Backend) -> None:
    s3.put_bytes("small", b"0123456789")
    wire = Wire(s3)
    assert s3.read_range("small", 10, 5) == b""
    assert s3.read_range("small", 50) == b""
    assert wire.ranges == ["bytes=10-14", "bytes=50-"]  # answered 416 by the server


def test_an_s3_range_read_of_a_missing_bucket_is_a_permanent_error(
    s3_server: S3Server,
) -> None:
    s3 = S3Backend(**s3_server.backend_kwargs("no-such-bucket-for-ranges"))
    with pytest.raises(PermanentStorageError) as e:
        s3.read_range("k", 0, 10)
    assert "no-such-bucket-for-ranges" in e.value.message
    assert s3_server.secret_access_key not in str(e.value)


def test_an_s3_range_read_failing_with_503_is_transient_and_retried(s3: S3Backend) -> None:
    s3.put_bytes("obj", DATA)
    failures: list[int] = []

    def unavailable(**_: Any) -> Any:
        if len(failures) < 2:
            failures.append(503)
            http = AWSResponse("http://fake", 503, HTTPHeaders(), None)
            return http, {
                "Error": {"Code": "ServiceUnavailable", "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": 503},
            }
        return None

    s3.client.meta.events.register("before-call.s3.GetObject", unavailable)
    with pytest.raises(TransientStorageError):
        s3.read_range("obj", 0, 10)
    sleeps: list[float] = []
    retrying = RetryingBackend(s3, attempts=3, base_delay=0.001, sleep=sleeps.append)
    assert retrying.read_range("obj", 10, 20) == DATA[10:30]
    assert failures == [503, 503] and len(sleeps) == 1

