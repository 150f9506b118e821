"""A one-shot command's start: the cyclic garbage collector paused, and modules its
imports name but its work never uses left unloaded.

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

``defer_imports`` (an embedded command, before its front imports SQLAlchemy) puts a
stand-in for ``asyncio`` and ``ssl`` into ``sys.modules``: SQLAlchemy imports ``asyncio``
as it loads (for its asyncio extension only), and ``asyncio`` and ``http.client`` import
``ssl``. Unloaded they leave ~3 MiB of a command's peak RSS out (the unchanged re-backup of
``benchmarks/cli_bench.py``: 77 → 74 MiB). The stand-in runs the module's code the first
time an attribute it lacks is asked for, so code that does use them works as always.

``no_plugins`` (the console script, first thing) tells pydantic to look for no plugins:
the first model built with plugins allowed (a request or output model of
``common.jobs.inputs`` / ``views``, built at its first use; the settings and Typer's
parameters are built with them off already) would otherwise read the entry points of every
installed distribution (~5-8 ms with ~170 installed) for plugins volkeeper does not use.
A ``PYDANTIC_DISABLE_PLUGINS`` already set (even empty: every plugin) wins.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import sys
import threading
import types

_paused = False

#: modules an embedded command's imports name but its work does not use
DEFERRED = ("asyncio", "ssl")
#: what an importer reads of a deferred module as it loads: the light submodule that
#: defines it (SQLAlchemy: ``iscoroutine = asyncio.iscoroutine``, at module level)
SUPPLIED = {"asyncio": {"iscoroutine": "asyncio.coroutines"}}


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


def no_plugins() -> None:
    """No pydantic plugins in this process unless the environment asks for them."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def defer_imports(names: tuple[str, ...] = DEFERRED) -> None:
    """Load each module of ``names`` at its first use instead of at its import (see the
    module's docstring). A module already imported, or not installed, is left alone.
    (``importlib.util.LazyLoader`` does not do: the import statement itself reads the
    module's ``__spec__``, which loads it.)"""
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)  # __spec__, __file__, __path__
        module.__dict__["_deferred_lock"] = threading.RLock()
        module.__class__ = _Deferred
        sys.modules[name] = module
        for attr, where in SUPPLIED.get(name, {}).items():
            setattr(module, attr, getattr(importlib.import_module(where), attr))


class _Deferred(types.ModuleType):
    """A module whose code has not run yet: the first attribute it lacks runs it (other
    threads asking meanwhile wait for it). While its code runs, what it lacks is missing
    to that code, as in any module being imported (``from . import events`` in it then
    imports the submodule)."""

    def __getattr__(self, attr: str) -> object:
        state = self.__dict__
        lock = state.get("_deferred_lock")
        if lock is None:  # loaded by another thread since this lookup began
            return types.ModuleType.__getattribute__(self, attr)
        if state.get("_deferred_loader") == threading.get_ident():
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")
        with lock:
            if type(self) is _Deferred:
                state["_deferred_loader"] = threading.get_ident()
                try:
                    self.__spec__.loader.exec_module(self)  # type: ignore[union-attr]
                except BaseException:
                    sys.modules.pop(self.__name__, None)  # as a failed import does
                    raise
                finally:
                    self.__class__ = types.ModuleType  # type: ignore[assignment]
                    del state["_deferred_loader"], state["_deferred_lock"]
        return getattr(self, attr)
