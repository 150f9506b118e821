"""The console asks before what cannot be taken back: every button that cancels a job or
a migration (jobs list, overview, job page, migration page) opens a confirmation dialog
first and posts the cancel only when it is confirmed. Read from the console's sources;
the clicks themselves are tested in a browser (tests/integration/api/test_console*.py)."""

from __future__ import annotations

import re

from tests.unit.api.test_console_assets import CONSOLE

CANCEL_CALL = re.compile(r"api\(`[^`]*/cancel`")


def _handlers() -> list[tuple[str, str]]:
    """(file, the click handler's source up to its cancel call) of every cancel call."""
    found = []
    for f in sorted(CONSOLE.glob("*.js")):
        text = f.read_text()
        for m in CANCEL_CALL.finditer(text):
            start = text.rfind("onclick:", 0, m.start())
            assert start >= 0, f"{f.name}: a cancel call outside a click handler"
            found.append((f.name, text[start:m.start()]))
    return found


def test_every_cancel_is_confirmed_before_it_is_posted() -> None:
    handlers = _handlers()
    assert {name for name, _ in handlers} >= {"live.js", "migrations.js"}
    for name, source in handlers:
        assert re.search(r"if \(!await confirm\w*Cancel\(\w+\)\) return;", source), name


def test_the_confirmations_are_dialogs_with_a_way_back() -> None:
    text = "\n".join(f.read_text() for f in CONSOLE.glob("*.js"))
    for fn in ("confirmCancel", "confirmMigrationCancel"):
        body = text[text.index(f"function {fn}("):]
        body = body[:body.index("\n}\n")]
        assert "await dialog(" in body
        assert '["Keep it", ""]' in body and '"danger"]' in body, fn
