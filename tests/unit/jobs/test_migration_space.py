"""The validation runs both sides' checks at once: the destination's worker measures its
free space, and ``_with_need`` compares it with the source's size afterwards — the same
check (``records.space_check``) the destination makes when it is told the size."""

from __future__ import annotations

from common.engine.records import space_check
from common.jobs.migrations import _with_need

DEST = {"checks": [{"name": "destination volume", "ok": True, "detail": "free"},
                   {"name": "free space", "ok": True, "detail": "2.0 GiB free at /v"}],
        "free_bytes": 2 << 30, "free_at": "/v"}


def test_a_source_larger_than_the_free_space_fails_the_check_naming_both() -> None:
    out = _with_need(DEST, 5 << 30)
    space = next(c for c in out["checks"] if c["name"] == "free space")
    assert not space["ok"]
    # sizes human, as everywhere in the CLI (the numbers themselves: free_bytes, bytes)
    assert space["detail"] == ("2.0 GiB free at /v, the volume needs 5.0 GiB — free space "
                               "there or migrate elsewhere")
    assert out["checks"][0] == DEST["checks"][0]
    assert DEST["checks"][1]["ok"]  # the worker's answer itself is left alone


def test_enough_space_says_what_is_needed_and_unknowns_leave_it_as_measured() -> None:
    space = next(c for c in _with_need(DEST, 800)["checks"] if c["name"] == "free space")
    assert space == {"name": "free space", "ok": True,
                     "detail": "2.0 GiB free at /v, 800 B needed"}
    assert _with_need(DEST, None) is DEST
    unseen = {"checks": [{"name": "free space", "ok": True, "detail": "not checked"}],
              "free_bytes": None, "free_at": ""}
    assert _with_need(unseen, 5 << 30) is unseen
    assert space_check(10, "/x", 10).ok and not space_check(9, "/x", 10).ok
