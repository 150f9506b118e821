"""A backend on S3-compatible object storage (``s3://bucket/prefix``) through boto3.

Keys live under ``prefix/`` in ``bucket``. A writer buffers one part; an object smaller
than a part is sent with one ``PutObject`` at commit, a larger one becomes a multipart
upload whose parts go up from a small thread pool while the caller keeps writing, and only
``CompleteMultipartUpload`` at commit makes it visible. Abort (or any failure) aborts the
multipart upload so nothing is left behind. Each part is retried on transient errors with
the same backoff as ``wrappers.RetryingBackend``; botocore's own retries are kept small.

Memory held by a writer is at most ``part_size x (concurrency + 1)`` for objects up to
1,000 parts; beyond that the part size grows by ``part_size`` every 1,000 parts so that
objects up to 55,000 x ``part_size`` fit in S3's limit of 10,000 parts.
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar, cast

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
)

from common.errors import (
    InvalidInput,
    NotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)
from common.storage.base import (
    Backend,
    ObjectInfo,
    ObjectWriter,
    check_key,
    check_range,
    range_bounds,
)
from common.storage.s3_errors import (
    error_code,
    is_not_found,
    is_unsatisfiable_range,
    map_s3_error,
)
from common.storage.wrappers import retry_call

__all__ = [
    "MAX_PARTS",
    "MIN_PART_SIZE",
    "S3Backend",
    "S3Reader",
    "S3Writer",
    "error_code",
    "is_not_found",
    "is_unsatisfiable_range",
    "map_s3_error",
]

T = TypeVar("T")
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
# Service models are read-only; sharing their loader makes a new backend cost ~20 ms, not ~100.
_LOADER = botocore.loaders.create_loader()


class S3Backend(Backend):
    """Objects under ``s3://bucket/prefix``; credentials fall back to boto3's default chain."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        path_style: bool = False,
        part_size: int = 16 * 1024 * 1024,
        concurrency: int = 4,
        *,
        session_token: str | None = None,
        retry_attempts: int = 5,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        client_attempts: int = 3,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise InvalidInput(
                f"S3 part size {part_size} is too small", f"use at least {MIN_PART_SIZE} (5 MiB)"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.display = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url
        self.part_size = part_size
        self.concurrency = max(1, concurrency)
        self.retry_attempts = retry_attempts
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self._bucket_seen = False
        core = botocore.session.Session()
        core.register_component("data_loader", _LOADER)
        session = boto3.session.Session(
            botocore_session=core,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region,
        )
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max(1, client_attempts)},
            max_pool_connections=max(10, self.concurrency * 2 + 2),
            s3={"addressing_style": "path"} if path_style else None,
        )
        self.client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)

    # -- helpers -------------------------------------------------------------------------

    def full_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel_key(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def error(self, e: Exception, action: str, key: str | None = None) -> StorageError:
        """Translate a botocore failure into our error tree (never NotFound)."""
        return map_s3_error(e, action, self.display, self.bucket, self.endpoint_url, key)

    def call(self, action: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run one client call, translating its errors; 404s become NotFound(object)."""
        try:
            result = fn()
        except (ClientError, BotoCoreError) as e:
            if key is not None and is_not_found(e):
                self._check_bucket_once()
                raise NotFound("object", key) from None
            raise self.error(e, action, key) from e
        self._bucket_seen = True
        return result

    def retried(self, action: str, key: str | None, fn: Callable[[], T]) -> T:
        """``call`` with transient failures retried by backoff (used inside writers)."""
        return retry_call(
            lambda: self.call(action, key, fn),
            attempts=self.retry_attempts,
            base_delay=self.retry_base_delay,
            max_delay=self.retry_max_delay,
        )

    def _check_bucket_once(self) -> None:
        """Tell a missing bucket from a missing key: HEAD answers both with a bare 404."""
        if self._bucket_seen:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as e:
            raise self.error(e, "checking bucket") from e
        self._bucket_seen = True

    # -- contract ------------------------------------------------------------------------

    def open_writer(self, key: str) -> ObjectWriter:
        return S3Writer(self, key)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """One PutObject up to the part size (larger objects go through the writer).

        Not retried here: ``RetryingBackend`` replays the whole call on transient errors, so
        attempts do not multiply (the writer's own retries would stack under it).
        """
        if len(data) > self.part_size:
            return super().put_bytes(key, data)
        full = self.full_key(key)
        self.call("writing", key,
                  lambda: self.client.put_object(Bucket=self.bucket, Key=full, Body=data))
        return ObjectInfo(key, len(data), datetime.now(UTC))

    def open_reader(self, key: str) -> BinaryIO:
        full = self.full_key(key)
        resp = self.call(
            "reading", key, lambda: self.client.get_object(Bucket=self.bucket, Key=full)
        )
        return cast(BinaryIO, S3Reader(self, key, full, resp))

    def read_range(self, key: str, offset: int, length: int | None = None) -> bytes:
        """One ranged GetObject (``Range: bytes=a-b``, ``bytes=a-`` or ``bytes=-N``).

        Errors map like ``open_reader``'s; 416 (empty object, offset past the end) is
        ``b""``. A suffix read with a ``length`` transfers the whole suffix and cuts it.
        Not retried here: ``RetryingBackend`` replays the whole call on transient errors.
        """
        check_range(offset, length)
        full = self.full_key(key)
        if length == 0:
            self.stat(key)  # NotFound for a missing key, like every other range
            return b""
        if offset < 0:
            spec = f"bytes={offset}"
        elif length is None:
            spec = f"bytes={offset}-"
        else:
            spec = f"bytes={offset}-{offset + length - 1}"

        def fetch() -> bytes:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=full, Range=spec)
            except ClientError as e:
                if is_unsatisfiable_range(e):
                    return b""
                raise
            body = resp["Body"]
            try:
                data: bytes = body.read()
            except OSError as e:
                raise self.error(e, "reading", key) from e
            finally:
                with contextlib.suppress(Exception):
                    body.close()
            if "ContentRange" not in resp:  # the server ignored Range and sent everything
                start, end = range_bounds(offset, length, len(data))
                return data[start:end]
            return data if length is None or offset >= 0 else data[:length]

        return self.call("reading", key, fetch)

    def put_bytes_if_absent(self, key: str, data: bytes) -> ObjectInfo:
        """One ``PutObject`` with ``If-None-Match: *``: S3 (since 2024), MinIO, Ceph RGW
        and moto refuse it with 412 when the key exists, which becomes Conflict (unless
        the object holds exactly ``data``: an earlier attempt of ours whose answer was
        lost). 409 ConditionalRequestConflict (a racing conditional write in flight) is
        retried. A server that ignores the header overwrites instead; the repository's
        read-back after initialising catches that in all but the narrowest race."""
        full = self.full_key(key)
        body = bytes(data)

        def put() -> bool:
            try:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=body, IfNoneMatch="*")
            except ClientError as e:
                code = error_code(e)
                if code == "PreconditionFailed" or _status(e) == 412:
                    return False
                if code == "ConditionalRequestConflict":
                    raise TransientStorageError(
                        f"creating {key!r} on {self.display} raced another conditional write"
                    ) from e
                raise
            return True

        if self.retried("creating", key, put):
            return ObjectInfo(key, len(body), datetime.now(UTC))
        return self._existing(key, self.get_bytes(key), body)

    def stat(self, key: str) -> ObjectInfo:
        full = self.full_key(key)
        resp = self.call("stat", key, lambda: self.client.head_object(Bucket=self.bucket, Key=full))
        return ObjectInfo(key, int(resp["ContentLength"]), resp.get("LastModified"))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        paginator = self.client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=full_prefix))
        while True:
            page = self.call("listing", None, lambda: next(pages, None))
            if page is None:
                return
            for obj in page.get("Contents", []):
                yield ObjectInfo(self._rel_key(obj["Key"]), int(obj["Size"]), obj["LastModified"])

    def delete(self, key: str) -> None:
        full = self.full_key(key)
        with contextlib.suppress(NotFound):
            self.call(
                "deleting", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=full)
            )

    def close(self) -> None:
        self.client.close()


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class S3Writer(ObjectWriter):
    """Streaming upload: one PutObject for small objects, multipart for the rest."""

    def __init__(self, backend: S3Backend, key: str) -> None:
        self._b = backend
        self.key = key
        self._full = backend.full_key(key)
        self._buf = bytearray()
        self._n = 0
        self._committed = False
        self._finished = False
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(backend.concurrency)
        self._futures: list[Future[dict[str, Any]]] = []
        self._error: BaseException | None = None
        self._part_no = 0

    @property
    def bytes_written(self) -> int:
        return self._n

    def _part_limit(self) -> int:
        return self._b.part_size * (1 + self._part_no // 1000)

    def write(self, data: bytes | memoryview) -> None:
        if self._finished:
            raise ValueError(f"writer for {self.key!r} is already finished")
        self._raise_part_error()
        view = memoryview(data).cast("B")
        self._n += len(view)
        while len(view):
            room = self._part_limit() - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if len(self._buf) >= self._part_limit():
                self._send_part()

    def _send_part(self) -> None:
        """Hand the full buffer to the pool; blocks while ``concurrency`` parts are in flight."""
        if self._upload_id is None:
            resp = self._b.retried(
                "starting upload of",
                self.key,
                lambda: self._b.client.create_multipart_upload(
                    Bucket=self._b.bucket, Key=self._full
                ),
            )
            self._upload_id = resp["UploadId"]
            self._pool = ThreadPoolExecutor(
                self._b.concurrency, thread_name_prefix=f"s3-upload-{self.key[-20:]}"
            )
        self._part_no += 1
        if self._part_no > MAX_PARTS:
            self.abort()
            raise PermanentStorageError(
                f"object {self.key!r} on {self._b.display} needs more than {MAX_PARTS} parts",
                "raise the target's part_size",
            )
        body, self._buf = self._buf, bytearray()
        self._slots.acquire()
        self._raise_part_error(release=True)
        assert self._pool is not None
        fut = self._pool.submit(self._upload_part, self._part_no, body)
        fut.add_done_callback(self._part_done)
        self._futures.append(fut)

    def _upload_part(self, number: int, body: bytearray) -> dict[str, Any]:
        resp = self._b.retried(
            f"uploading part {number} of",
            self.key,
            lambda: self._b.client.upload_part(
                Bucket=self._b.bucket,
                Key=self._full,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            ),
        )
        return {"PartNumber": number, "ETag": resp["ETag"]}

    def _part_done(self, fut: Future[dict[str, Any]]) -> None:
        if not fut.cancelled() and fut.exception() is not None and self._error is None:
            self._error = fut.exception()
        self._slots.release()

    def _raise_part_error(self, release: bool = False) -> None:
        if self._error is not None:
            if release:
                self._slots.release()
            err = self._error
            self.abort()
            raise err

    def commit(self) -> ObjectInfo:
        if self._finished:
            raise ValueError(f"writer for {self.key!r} is already finished")
        try:
            if self._upload_id is None:
                body, self._buf = self._buf, bytearray()
                self._b.retried(
                    "writing",
                    self.key,
                    lambda: self._b.client.put_object(
                        Bucket=self._b.bucket, Key=self._full, Body=body
                    ),
                )
            else:
                if self._buf:
                    self._send_part()
                parts = [f.result() for f in self._futures]
                self._complete(parts)
        except BaseException:
            self.abort()
            raise
        self._finished = self._committed = True
        self._shutdown()
        return ObjectInfo(self.key, self._n, datetime.now(UTC))

    def _complete(self, parts: list[dict[str, Any]]) -> None:
        upload_id = self._upload_id

        def complete() -> bool:
            try:
                self._b.client.complete_multipart_upload(
                    Bucket=self._b.bucket,
                    Key=self._full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
            except ClientError as e:
                if error_code(e) == "NoSuchUpload":
                    return False
                raise
            return True

        # NoSuchUpload after a retry: an earlier attempt completed it and its answer was lost.
        completed = self._b.retried("completing upload of", self.key, complete)
        if not completed and self._b.stat(self.key).size != self._n:
            raise PermanentStorageError(
                f"upload of {self.key!r} to {self._b.display} vanished before completion",
                "another process may have aborted it; run the job again",
            )
        self._upload_id = None

    def abort(self) -> None:
        if self._committed:
            return
        self._finished = True
        self._buf = bytearray()
        self._shutdown(cancel=True)
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        # Best effort: a bucket lifecycle rule can reap stray multipart uploads.
        with contextlib.suppress(StorageError):
            self._b.retried(
                "aborting upload of",
                None,
                lambda: self._b.client.abort_multipart_upload(
                    Bucket=self._b.bucket, Key=self._full, UploadId=upload_id
                ),
            )

    def _shutdown(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None


class S3Reader(io.RawIOBase):
    """Streams a ``GetObject`` body; a broken connection resumes with a ranged GET of the
    same version (If-Match ETag), retried with backoff."""

    def __init__(self, backend: S3Backend, key: str, full: str, resp: dict[str, Any]) -> None:
        self._b = backend
        self._key = key
        self._full = full
        self._body: Any = resp["Body"]
        self._etag: str | None = resp.get("ETag")
        self._size = int(resp["ContentLength"])
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        want = min(size, self._size - self._pos)
        if want <= 0:
            return b""
        first = self._b.retried("reading", self._key, lambda: self._read_some(want))
        if len(first) == want:
            return first
        chunks = [first]
        got = len(first)
        while got < want:
            more = self._b.retried(
                "reading", self._key, functools.partial(self._read_some, want - got)
            )
            if not more:
                break
            chunks.append(more)
            got += len(more)
        return b"".join(chunks)

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(8 * 1024 * 1024):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _read_some(self, n: int) -> bytes:
        if self._body is None:
            self._reopen()
        try:
            data: bytes = self._body.read(n)
        except (BotoCoreError, OSError) as e:
            self._drop_body()
            raise self._b.error(e, "reading", self._key) from e
        if not data and self._pos < self._size:
            self._drop_body()
            raise TransientStorageError(
                f"reading {self._key!r} from {self._b.display} ended early at byte {self._pos}"
            )
        self._pos += len(data)
        return data

    def _reopen(self) -> None:
        kwargs: dict[str, Any] = {"Range": f"bytes={self._pos}-"}
        if self._etag:
            kwargs["IfMatch"] = self._etag
        resp = self._b.call(
            "reading",
            self._key,
            lambda: self._b.client.get_object(Bucket=self._b.bucket, Key=self._full, **kwargs),
        )
        self._body = resp["Body"]

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(Exception):  # the connection is already broken
                body.close()

    def close(self) -> None:
        if not self.closed:
            self._drop_body()
        super().close()


# -- error mapping -------------------------------------------------------------------------
