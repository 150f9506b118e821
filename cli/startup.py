"""A one-shot command's start with the cyclic garbage collector paused.

Starting a command imports several hundred modules, builds the CLI's parameters and opens
the database and Docker: tens of thousands of objects that live as long as the process and
hardly any garbage in cycles. With the collector on, every 700 allocations start a young
collection and every tenth of those an older one that traverses them again: 40-60 ms of a
command's CPU before it does anything. ``pause`` (``cli.main.main``, before the command
runs) switches it off; ``resume`` (``cli.front``, once the command's front is open, before
its work; ``serve``, ``worker`` and ``db upgrade`` at their start) moves every object alive
into the permanent generation (``gc.freeze``: never traversed again) and switches the
collector back on, so the work itself — a backup walking a million files, a server running
for weeks — runs with it as always. Only a collector ``pause`` switched off is switched
back on: a process that imports the CLI (a test) keeps its own setting.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Switch the cyclic collector off for the command's start (when it is on)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Freeze what the start left alive and switch the collector back on (after ``pause``)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
