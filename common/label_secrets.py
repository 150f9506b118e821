"""Secrets in container and volume labels, kept out of what volkeeper stores and shows.

Labels are configuration, and people put passwords in them: a hook command
(``volkeeper.pre-backup=mysqldump -uroot -pS3cret app``), an environment-like label
(``com.example.db-password=…``), a URL with user info. The inventory keeps every label
(policies select volumes by them), so before a label reaches the database, an API answer,
a job's result or a log its value goes through ``redact_labels``: a label whose name says
it holds a secret keeps only ``<redacted>``; in any other value the secret parts are
replaced (``--password=<redacted>``, ``PGPASSWORD=<redacted>``, ``mysql -p<redacted>``
in a hook command, ``scheme://user:<redacted>@host``, ``Bearer <redacted>``). The hooks
themselves read the labels from Docker when they run, never from the inventory, so they
still get the real command.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

REDACTED = "<redacted>"
_WORDS = r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_.]?key|credentials?|" \
         r"private[-_.]?key|access[-_.]?key)"
#: a label name whose last part names a secret: its whole value goes
_SECRET_NAME = re.compile(rf"(?i)(?:^|[-_.]){_WORDS}(?:$|[-_.])|{_WORDS}$")
_VALUE = r"(\"[^\"]*\"|'[^']*'|(?!-)[^\s\"';&|]+)"  # not the next option
_INLINE = (
    # --password=x, --db-password x, -password x
    re.compile(rf"(?i)(--?[\w-]*{_WORDS}[\w-]*(?:=|\s+))" + _VALUE),
    # PGPASSWORD=x, MYSQL_PWD=x, API_TOKEN=x (environment assignments)
    re.compile(rf"(?i)(\b\w*{_WORDS}\w*=)" + _VALUE),
    # scheme://user:secret@host
    re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:)([^\s@]+)(?=@)"),
    # Authorization: Bearer x / Basic x
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]{8,})"),
)
#: mysql/mysqldump ``-pSECRET`` (attached: ``-p 5432`` is a port and stays)
_DASH_P = re.compile(r"((?:^|\s)-p)([^\s\"';&|]+)")


def is_hook_label(name: str) -> bool:
    """``volkeeper.pre-backup`` … ``volkeeper.post-restore``: its value is a command."""
    return name.startswith("volkeeper.") and name.endswith(("-backup", "-restore"))


def redact_command(text: str) -> str:
    """A hook command without the secrets it spells out."""
    return _DASH_P.sub(rf"\g<1>{REDACTED}", redact_text(text))


def redact_text(text: str) -> str:
    """``text`` with the secret parts of the forms above replaced."""
    for pattern in _INLINE:
        text = pattern.sub(rf"\g<1>{REDACTED}", text)
    return text


def redact_label(name: str, value: str) -> str:
    if _SECRET_NAME.search(name.rsplit(".", 1)[-1]):
        return REDACTED if value else value
    return redact_command(value) if is_hook_label(name) else redact_text(value)


def redact_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The labels with their secrets replaced (names and other values unchanged)."""
    return {str(k): redact_label(str(k), str(v)) for k, v in (labels or {}).items()}
