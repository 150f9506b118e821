"""The exception tree. Every error carries a message saying what went wrong and a hint
saying what to do about it; neither ever contains a secret."""

from __future__ import annotations

#: set (``extra={OUTCOME: True}``) on the log record of an error a job's outcome already
#: carries (its row's error, its result's warnings): a front that ran the job in its own
#: process and shows that outcome itself (the one-shot CLI, ``cli.main``) leaves the line
#: out instead of printing it twice
OUTCOME = "job_outcome"


class VolkeeperError(Exception):
    """Base of every error volkeeper reports to a user."""

    status_code = 500
    code = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class NotFound(VolkeeperError):
    status_code = 404
    code = "not_found"

    def __init__(self, kind: str, name: str, hint: str | None = None) -> None:
        super().__init__(f"{kind} {name!r} not found", hint)
        self.kind = kind
        self.name = name


class InvalidInput(VolkeeperError):
    status_code = 422
    code = "invalid_input"


class Conflict(VolkeeperError):
    status_code = 409
    code = "conflict"


class Unauthorized(VolkeeperError):
    status_code = 401
    code = "unauthorized"


class Forbidden(VolkeeperError):
    """Authenticated, but the token's role does not allow the request."""

    status_code = 403
    code = "forbidden"


class Unavailable(VolkeeperError):
    """A server volkeeper depends on (host, broker) cannot be reached right now."""

    status_code = 503
    code = "unavailable"


class StorageError(VolkeeperError):
    """A storage backend failed. ``transient`` errors may succeed when retried."""

    code = "storage_error"
    transient = False


class TransientStorageError(StorageError):
    transient = True


class PermanentStorageError(StorageError):
    transient = False


class IntegrityError(VolkeeperError):
    """Stored data does not match its checksum or manifest."""

    code = "integrity_error"


class Refused(IntegrityError):
    """A backup holds something a restore refuses by policy (a device node, more data than
    its catalog entry records); nothing of it is kept."""

    code = "refused"


class Damaged(IntegrityError):
    """Verification found damage; ``result`` holds the full report for the job record."""

    def __init__(self, message: str, result: dict[str, object], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.result = result


class RestoreRefused(VolkeeperError):
    """A restore's validation failed; ``result`` holds every check for the job record."""

    status_code = 409
    code = "restore_refused"

    def __init__(self, message: str, result: dict[str, object], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.result = result


class RolledBack(VolkeeperError):
    """A replace-restore failed and the volume was put back to its safety snapshot."""

    code = "rolled_back"

    def __init__(self, message: str, result: dict[str, object], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.result = result


class DockerError(VolkeeperError):
    code = "docker_error"


class JobCancelled(VolkeeperError):
    code = "cancelled"
