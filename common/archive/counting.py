"""What the progress of an archive backup or restore counts, as the repository's does:
regular files and their content bytes — not directories (the volume's root ``./`` is a tar
member too), links or other entries, not tar headers, padding or compressed bytes — so
"3 of 3 files, 6 B" while it runs is what the result says when it ends.

``ContentProgress`` plugs into a ``TarScanner``: ``on_entry`` counts a member once it has
gone by; ``on_start`` passes the content of a large file to the tracker as it streams (a
file of gigabytes moves the bar on its way, small ones count at once when done).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from common.archive.tarmember import TarEntry
from common.progress import ProgressTracker

#: a file larger than this counts its bytes as they stream by (else: when it is done)
STREAMED = 1 << 20

DataSink = Callable[[memoryview], object]


class ContentProgress:
    """Counts a tar stream's regular files and their content into ``tracker`` (only those
    at or below ``paths``, member names such as ``./a/b``, when given). ``then_start``:
    another ``on_start`` hook of the same scanner (a restore's policy check)."""

    def __init__(self, tracker: ProgressTracker, *, paths: Sequence[str] | None = None,
                 then_start: Callable[[TarEntry], DataSink | None] | None = None) -> None:
        self.tracker = tracker
        self.paths = [p.rstrip("/") for p in paths] if paths else None
        self.then_start = then_start

    def _counts(self, entry: TarEntry) -> bool:
        if entry.type != "file":
            return False
        if self.paths is None:
            return True
        name = "./" + entry.path.removeprefix("./").strip("/")
        return any(name == p or name.startswith(p + "/") for p in self.paths)

    def on_start(self, entry: TarEntry) -> DataSink | None:
        other = self.then_start(entry) if self.then_start is not None else None
        if entry.size <= STREAMED or not self._counts(entry):
            return other
        add = self.tracker.add

        def count(data: memoryview) -> None:
            add(len(data), 0)

        if other is None:
            return count

        def both(data: memoryview) -> None:
            other(data)
            count(data)

        return both

    def on_entry(self, entry: TarEntry) -> None:
        if self._counts(entry):
            self.tracker.add(entry.size if entry.size <= STREAMED else 0, 1)
