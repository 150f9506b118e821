"""Mapping botocore errors to volkeeper's storage errors: missing objects are NotFound,
throttling, timeouts, 5xx and dropped connections are transient (retried), everything else
— bad credentials, missing bucket, access denied — is permanent, with a hint. Messages name
the target and never contain credentials."""

from __future__ import annotations

import logging
import re

from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ResponseStreamingError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from common.errors import PermanentStorageError, StorageError, TransientStorageError

_CREDENTIALS_HINT = "check the target's access_key_id and secret_access_key secrets"
_PERMANENT: dict[str, tuple[str, str]] = {
    "NoSuchBucket": (
        "bucket {bucket!r} does not exist",
        "check the bucket name in the target URL, or create the bucket",
    ),
    "AccessDenied": (
        "access denied",
        "check the credentials and that the bucket policy allows this access key",
    ),
    "AllAccessDisabled": ("access to the bucket is disabled", "check the bucket's settings"),
    "InvalidAccessKeyId": ("the access key id is not known to the server", _CREDENTIALS_HINT),
    "SignatureDoesNotMatch": (
        "the request signature does not match (wrong secret key?)",
        _CREDENTIALS_HINT,
    ),
    "ExpiredToken": ("the session token has expired", "renew the target's credentials"),
    "InvalidToken": ("the session token is invalid", _CREDENTIALS_HINT),
    "InvalidBucketName": ("bucket name {bucket!r} is invalid", "fix the bucket in the target URL"),
    "PermanentRedirect": (
        "the bucket lives in another region",
        "set the target's region option to the bucket's region",
    ),
    "AuthorizationHeaderMalformed": (
        "the request was signed for the wrong region",
        "set the target's region option to the bucket's region",
    ),
    "PreconditionFailed": (
        "the object changed while it was being read",
        "another process replaced it; run the job again",
    ),
}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
}
_BARE_STATUS: dict[str, str] = {"403": "AccessDenied", "301": "PermanentRedirect"}


_CODE = re.compile(r"[A-Za-z0-9.]{1,64}")
log = logging.getLogger(__name__)


def error_code(e: ClientError) -> str:
    """The S3 error code of a ClientError (``"404"`` for a bare HEAD response)."""
    return str(e.response.get("Error", {}).get("Code", ""))


def is_not_found(e: Exception) -> bool:
    """Whether a botocore error means the object (key) does not exist."""
    return isinstance(e, ClientError) and error_code(e) in ("NoSuchKey", "404", "NotFound")


def is_unsatisfiable_range(e: ClientError) -> bool:
    """Whether a ranged GET failed only because no byte of the object is in the range."""
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(e) == "InvalidRange" or status == 416


def map_s3_error(
    e: Exception, action: str, display: str, bucket: str, endpoint: str | None, key: str | None
) -> StorageError:
    """A StorageError naming the target, the cause and a hint; never credentials."""
    where = f"{action} {key!r} on {display}" if key is not None else f"{action} {display}"
    if isinstance(e, ClientError):
        code = error_code(e)
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = _BARE_STATUS.get(code, code)
        if key is None and code in ("404", "NotFound"):
            code = "NoSuchBucket"
        if code in _PERMANENT:
            what, hint = _PERMANENT[code]
            return PermanentStorageError(f"{where} failed: {what.format(bucket=bucket)}", hint)
        # The server's message (the response body) is not repeated: the endpoint may be
        # any host, and job messages must not carry what it answered; the code is kept
        # only when it looks like an S3 error code.
        log.debug("%s: S3 error %s (%s): %s", where, code, status,
                  e.response.get("Error", {}).get("Message"))
        shown = code if _CODE.fullmatch(code) else "unrecognised error"
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientStorageError(f"{where} failed: {shown} ({status})")
        return PermanentStorageError(
            f"{where} failed: {shown} ({status})",
            "check the target's bucket, options and credentials",
        )
    server = endpoint or "the AWS S3 endpoint"
    if isinstance(e, NoCredentialsError | PartialCredentialsError):
        return PermanentStorageError(
            f"{where} failed: no S3 credentials found", "set the target's access key secrets"
        )
    if isinstance(e, SSLError):
        return PermanentStorageError(
            f"{where} failed: TLS error talking to {server}: {e}",
            "check the endpoint URL and its certificate",
        )
    if isinstance(e, BotoConnectionError | HTTPClientError | OSError):
        return TransientStorageError(
            f"{where} failed: cannot reach {server}: {e}",
            "check the endpoint URL and that the server is up; the network may be down",
        )
    if isinstance(e, ResponseStreamingError | IncompleteReadError):
        return TransientStorageError(f"{where} failed: connection broke mid-transfer: {e}")
    return PermanentStorageError(f"{where} failed: {e}", "check the target's configuration")
