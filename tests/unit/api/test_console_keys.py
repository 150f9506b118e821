"""The Keys page says what happened to a repository key: removing one toasts that it was
removed (before, the last toast still said a key was added), and a failed request is
shown rather than lost. Read from the console's source; the page itself is tested in a
browser (tests/integration/api/test_console_manage.py)."""

from __future__ import annotations

import re

from tests.unit.api.test_console_assets import CONSOLE


def _remove_handler() -> str:
    text = (CONSOLE / "keys.js").read_text()
    start = text.index('"aria-label": `Remove key ${k.id}`')
    return text[start:text.index('"Remove…"', start)]


def test_removing_a_key_toasts_that_it_was_removed() -> None:
    handler = _remove_handler()
    delete = handler.index('{ method: "DELETE" }')
    after = handler[delete:]
    assert re.search(r"toast\(`Key \$\{k\.id\} removed`\)", after)
    assert "added" not in after
    assert ".catch(e => { complain(e); return null; })" in after  # a failed request shows
