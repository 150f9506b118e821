"""``RESULTS.md``'s sections that a benchmark rewrites: each between two markers of its own
(``<!-- NAME:start -->`` … ``<!-- NAME:end -->``); the rest of the file is kept."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def record(name: str, section: str, *, new_heading: str = "", after: str | None = None,
           path: Path = RESULTS, empty: str = "") -> None:
    """Put ``section`` between the ``name`` markers of ``path``. The first time (no
    markers yet) the block goes after the line holding ``after`` when given and found,
    else at the end, under ``new_heading`` (a Markdown heading line) when given; ``empty``
    is the text of a missing file."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else empty
    block = f"{start}\n{section}{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        intro = f"{new_heading}\n\n" if new_heading else ""
        if after and after in text:
            head, rest = text.split(after, 1)
            text = head + after + "\n\n" + intro + block + rest
        else:
            text = text.rstrip("\n") + "\n\n" + intro + block + "\n"
    path.write_text(text)
