"""Storage failures: unreachable endpoints, an unusable local root, and the retry and
bandwidth wrappers (with an injected clock, never wall time). Failures that need an S3
server (missing buckets, failing part uploads, a broken download) are in
``tests/integration/storage/test_s3_faults.py``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import Conflict, NotFound, PermanentStorageError, TransientStorageError
from common.storage.base import Backend, ObjectInfo, ObjectWriter
from common.storage.local import LocalBackend
from common.storage.memory import MemoryBackend
from common.storage.s3 import S3Backend
from common.storage.wrappers import RateLimitedBackend, RetryingBackend, TokenBucket
from tests.fixtures.util import FakeClock, free_port

SECRET = "wJalrXUtnFEMI-very-secret-value"


# -- S3 -------------------------------------------------------------------------------------


def test_an_unreachable_endpoint_fails_transiently_after_bounded_retries() -> None:
    sleeps: list[float] = []
    s3 = S3Backend(
        "backups",
        "site-a",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SECRET,
        path_style=True,
        client_attempts=1,
        connect_timeout=2,
        retry_attempts=4,  # the writer's own retries must not stack under RetryingBackend's
    )
    backend = RetryingBackend(s3, attempts=3, base_delay=0.001, max_delay=0.01, sleep=sleeps.append)
    puts: list[str] = []
    s3.client.meta.events.register("before-call.s3.PutObject", lambda **_: puts.append("put"))
    ops = (lambda: backend.stat("k"), backend.check, lambda: list(backend.list("x/")),
           lambda: backend.put_bytes("k", b"small objects are one PutObject"))
    for op in ops:
        sleeps.clear()
        with pytest.raises(TransientStorageError) as e:
            op()
        text = str(e.value)
        assert "gave up after 3 attempts" in text
        assert "s3://backups/site-a" in text
        assert SECRET not in text and SECRET not in repr(e.value.__cause__)
        assert len(sleeps) == 2 and all(0 < s <= 0.01 for s in sleeps)
    assert len(puts) == 3  # exactly the outer attempts: the writer's retries do not stack


def test_an_unreachable_endpoint_fails_a_writer_after_its_own_retries() -> None:
    s3 = S3Backend(
        "backups",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SECRET,
        region="us-east-1",
        client_attempts=1,
        retry_attempts=2,
        retry_base_delay=0.001,
    )
    writer = s3.open_writer("small")
    writer.write(b"data")
    with pytest.raises(TransientStorageError) as e:
        writer.commit()
    assert "gave up after 2 attempts" in str(e.value)
    assert "s3://backups" in str(e.value)
    assert SECRET not in str(e.value)


# -- local ----------------------------------------------------------------------------------


def test_a_local_root_that_is_a_file_is_a_permanent_error_naming_the_path(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    root.write_text("not a directory")
    backend = LocalBackend(root)
    with pytest.raises(PermanentStorageError) as e:
        backend.put_bytes("volkeeper/x", b"data")
    assert str(root) in e.value.message
    assert e.value.hint and "directory" in e.value.hint
    with pytest.raises(PermanentStorageError) as e2:
        backend.check()
    assert str(root) in str(e2.value)


# -- retry wrapper --------------------------------------------------------------------------


class Flaky(MemoryBackend):
    """Fails the first ``failures`` calls of stat and list with a transient error."""

    def __init__(self, failures: int, error: type[Exception] = TransientStorageError) -> None:
        super().__init__("flaky")
        self.failures = failures
        self.error = error
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"call {self.calls} to {self.display} timed out")

    def stat(self, key: str) -> ObjectInfo:
        self._maybe_fail()
        return super().stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        items = list(super().list(prefix))
        for n, item in enumerate(items):
            if n == 2:
                self._maybe_fail()  # fails mid-listing, after two items were yielded
            yield item


def test_retrying_recovers_from_transient_errors() -> None:
    inner = Flaky(failures=2)
    inner.put_bytes("k", b"v")
    sleeps: list[float] = []
    backend = RetryingBackend(inner, attempts=3, base_delay=1.0, max_delay=1.5, sleep=sleeps.append)
    assert backend.stat("k").size == 1
    assert inner.calls == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 0.75 <= sleeps[1] <= 1.5  # exponential, capped


def test_retrying_gives_up_after_the_last_attempt_and_names_the_cause() -> None:
    backend = RetryingBackend(Flaky(failures=10), attempts=4, base_delay=0, sleep=lambda s: None)
    with pytest.raises(TransientStorageError) as e:
        backend.stat("k")
    assert e.value.message == "gave up after 4 attempts: call 4 to memory://flaky timed out"


def test_retrying_does_not_retry_permanent_errors_or_not_found() -> None:
    inner = Flaky(failures=1, error=PermanentStorageError)
    backend = RetryingBackend(inner, attempts=5, base_delay=0, sleep=lambda s: None)
    with pytest.raises(PermanentStorageError):
        backend.stat("k")
    with pytest.raises(NotFound):
        backend.stat("k")
    assert inner.calls == 2


def test_a_retried_listing_yields_every_key_exactly_once_in_order() -> None:
    inner = Flaky(failures=2)
    for k in ("a", "b", "c", "d"):
        inner.put_bytes(k, b"")
    backend = RetryingBackend(inner, attempts=3, base_delay=0, sleep=lambda s: None)
    assert [i.key for i in backend.list()] == ["a", "b", "c", "d"]


class FlakyCreate(MemoryBackend):
    """put_bytes_if_absent stores the object, then fails ``failures`` times as if the
    answer was lost (the worst case for a retried conditional write)."""

    def __init__(self, failures: int) -> None:
        super().__init__("flaky-create")
        self.failures = failures
        self.calls = 0

    def put_bytes_if_absent(self, key: str, data: bytes) -> ObjectInfo:
        self.calls += 1
        info = super().put_bytes_if_absent(key, data)
        if self.calls <= self.failures:
            raise TransientStorageError(f"answer {self.calls} for {key} lost")
        return info


def test_retrying_put_if_absent_survives_a_lost_answer_but_never_retries_a_conflict() -> None:
    inner = FlakyCreate(failures=1)
    backend = RetryingBackend(inner, attempts=3, base_delay=0, sleep=lambda s: None)
    assert backend.put_bytes_if_absent("cfg", b"mine").size == 4  # our own earlier write
    assert inner.calls == 2
    with pytest.raises(Conflict):
        backend.put_bytes_if_absent("cfg", b"theirs")
    assert inner.calls == 3  # one call: a Conflict is an answer, not a failure
    assert inner.get_bytes("cfg") == b"mine"


def test_rate_limited_put_if_absent_passes_through_and_is_charged() -> None:
    clock = FakeClock()
    inner = MemoryBackend()
    backend = RateLimitedBackend(inner, 10_000, clock=clock, sleep=clock.sleep)
    backend.put_bytes_if_absent("cfg", bytes(30_000))
    assert math.isclose(clock.slept, 2.0)  # 10 KB burst, 20 KB at 10 KB/s
    with pytest.raises(Conflict):
        backend.put_bytes_if_absent("cfg", b"other")
    assert inner.get_bytes("cfg") == bytes(30_000)


def test_the_generic_put_if_absent_checks_reads_back_and_refuses_other_bytes() -> None:
    inner = MemoryBackend()

    class Plain(Backend):  # no override: the base class's best-effort version
        display = "plain://"
        open_writer = inner.open_writer
        open_reader = inner.open_reader
        stat = inner.stat
        list = inner.list
        delete = inner.delete

    backend = Plain()
    backend.put_bytes_if_absent("k", b"one")
    assert backend.put_bytes_if_absent("k", b"one").size == 3
    with pytest.raises(Conflict):
        backend.put_bytes_if_absent("k", b"two")
    assert inner.get_bytes("k") == b"one"


def test_retrying_passes_writers_through() -> None:
    inner = MemoryBackend()
    backend = RetryingBackend(inner, attempts=2)
    with backend.open_writer("w") as w:
        w.write(b"abc")
        w.commit()
    assert inner.get_bytes("w") == b"abc"


# -- bandwidth limit ------------------------------------------------------------------------


def test_the_token_bucket_lets_a_burst_through_then_paces_to_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock, sleep=clock.sleep)
    bucket.consume(1000)  # the initial one-second burst
    assert clock.slept == 0
    bucket.consume(500)
    assert math.isclose(clock.slept, 0.5)
    clock.now += 10  # idle time refills only up to capacity
    bucket.consume(1000)
    assert math.isclose(clock.slept, 0.5)
    bucket.consume(2500)  # larger than capacity: sleeps off the debt
    assert math.isclose(clock.slept, 3.0)


def test_rate_limited_writes_and_reads_take_bytes_over_rate_seconds() -> None:
    clock = FakeClock()
    inner = MemoryBackend()
    backend = RateLimitedBackend(inner, 10_000, clock=clock, sleep=clock.sleep)
    data = bytes(100_000)
    with backend.open_writer("obj") as w:
        for i in range(0, len(data), 4096):
            w.write(memoryview(data)[i : i + 4096])
        assert w.bytes_written == len(data)
        w.commit()
    assert inner.get_bytes("obj") == data
    # 10 KB burst, then 90 KB at 10 KB/s.
    assert math.isclose(clock.slept, 9.0)
    with backend.open_reader("obj") as r:
        while r.read(7000):
            pass
    assert math.isclose(clock.slept, 19.0)


def test_a_rate_limited_writer_without_commit_aborts() -> None:
    inner = MemoryBackend()
    backend: Backend = RateLimitedBackend(inner, 10**9)
    w: ObjectWriter
    with backend.open_writer("x") as w:
        w.write(b"abc")
    with pytest.raises(NotFound):
        inner.stat("x")
