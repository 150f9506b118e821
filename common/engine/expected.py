"""Targets whose repository must already exist: the catalog lists repo backups in them.

A first ``--format repo`` backup creates the target's repository. When the catalog already
holds backups in it, a missing repository is not a first backup but a target that is not
mounted (a file:// directory whose filesystem is absent) or was wiped: creating a fresh
repository there would write backups, under a new key, where nobody looks for them — and
leave every catalogued backup pointing at nothing. ``common.jobs`` marks the targets it
opens (``repository_expected``) with a check of its catalog; ``repo.open_repo`` asks it
only when it is about to create a repository, and refuses when it says yes (a job that
opens a target pays no query for it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

_EXPECTED: ContextVar[Mapping[str, Callable[[], bool]]] = ContextVar(
    "volkeeper_repository_expected", default=MappingProxyType({}))


@contextlib.contextmanager
def repository_expected(display: str, known: Callable[[], bool] = lambda: True
                        ) -> Iterator[None]:
    """Inside, the repository of the backend shown as ``display`` must exist already when
    ``known()`` says so (asked only by ``is_expected``)."""
    token = _EXPECTED.set({**_EXPECTED.get(), display: known})
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def is_expected(display: str) -> bool:
    """Whether a missing repository of ``display`` must not be created."""
    known = _EXPECTED.get().get(display)
    return known is not None and known()
