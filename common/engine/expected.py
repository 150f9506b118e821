"""Targets whose repository must already exist: the catalog lists repo backups in them.

A first ``--format repo`` backup creates the target's repository. When the catalog already
holds backups in it, a missing repository is not a first backup but a target that is not
mounted (a file:// directory whose filesystem is absent) or was wiped: creating a fresh
repository there would write backups, under a new key, where nobody looks for them — and
leave every catalogued backup pointing at nothing. ``common.jobs`` marks such a target
around its work (``repository_expected``) and ``repo.open_repo`` refuses to create one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_EXPECTED: ContextVar[frozenset[str]] = ContextVar("volkeeper_repository_expected",
                                                   default=frozenset())


@contextlib.contextmanager
def repository_expected(display: str) -> Iterator[None]:
    """Inside, the repository of the backend shown as ``display`` must exist already."""
    token = _EXPECTED.set(_EXPECTED.get() | {display})
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def is_expected(display: str) -> bool:
    return display in _EXPECTED.get()
