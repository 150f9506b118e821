"""How many rows a list returns: every front (API, CLI, scheduler) goes through here.

A ``limit`` below 1 is refused: SQLite reads ``LIMIT -1`` as "no limit" and PostgreSQL
fails on it, so the same request behaved differently per database. Above ``MAX_ROWS`` a
list is cut to ``MAX_ROWS``.
"""

from __future__ import annotations

from common.errors import InvalidInput

MAX_ROWS = 1000
#: the largest offset: any list is far shorter, and a larger one overflows SQL's BIGINT
MAX_OFFSET = 10**12


def page_limit(limit: int, field: str = "limit") -> int:
    """``limit`` cut to ``MAX_ROWS``; InvalidInput (422) naming ``field`` below 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"{field} must be a whole number of at least 1 (got {limit!r})",
                           f"ask for 1 to {MAX_ROWS} rows, e.g. {field}=50")
    return min(limit, MAX_ROWS)


def page_offset(offset: int, field: str = "offset") -> int:
    """``offset`` (rows to skip); InvalidInput (422) naming ``field`` below 0."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput(f"{field} must be a whole number of at least 0 (got {offset!r})",
                           f"skip 0 or more rows, e.g. {field}=100")
    if offset > MAX_OFFSET:  # past a 64-bit integer the database driver fails (a 500)
        raise InvalidInput(f"{field} must be at most {MAX_OFFSET} (got {offset!r})",
                           f"skip fewer rows, e.g. {field}=100")
    return offset
