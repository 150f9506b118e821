"""The newest schema revision, read from the Alembic revision files' headers (no Alembic
or SQLAlchemy import: a database already at this revision needs neither)."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path

_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=\s*(.+)$", re.MULTILINE)


def migrations_dir() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the volkeeper 'migrations' package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def head_revision() -> str | None:
    """The newest revision of ``migrations/versions`` (the one no other revision revises),
    read from the files' ``revision``/``down_revision`` lines; None when that is not one
    plain answer (then ``upgrade`` asks Alembic)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (migrations_dir() / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        rev, down = found.get("revision", "").strip(), found.get("down_revision", "").strip()
        if not re.fullmatch(r"'[^']+'|\"[^\"]+\"", rev):
            return None
        revisions.add(rev[1:-1])
        if down != "None":
            if not re.fullmatch(r"'[^']+'|\"[^\"]+\"", down):
                return None  # a merge revision (a tuple): let Alembic decide
            revised.add(down[1:-1])
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None
