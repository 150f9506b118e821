"""A one-shot command starts with the cyclic garbage collector paused (``cli.startup``);
its work runs with the collector on, the start's objects frozen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# the embedded ``targets list``, its front's read wrapped to report the collector's state
_COMMAND = """
import gc, json, sys
import cli.local
seen = {}
read = cli.local.LocalFront.targets
def targets(self):
    seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())
    return read(self)
cli.local.LocalFront.targets = targets
import atexit, os
import cli.main
exit_now = cli.main._exit
def _exit(code):
    sys.stderr.write("SEEN " + json.dumps(seen) + "\\n")
    exit_now(code)
cli.main._exit = _exit
sys.argv = ["volkeeper", "targets", "list", "--json"]
cli.main.main()
"""


def _run(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
    env["VOLKEEPER_HOME"] = str(home)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)


def test_a_one_shot_command_works_with_the_collector_on_and_its_start_frozen(
        tmp_path: Path) -> None:
    done = _run(_COMMAND, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["name"] == "local"
    seen = json.loads(done.stderr.split("SEEN ", 1)[1].splitlines()[0])
    assert seen["enabled"] is True
    assert seen["frozen"] > 10_000  # the modules, the CLI and the database layer


def test_resume_leaves_a_collector_it_did_not_pause_as_it_was(tmp_path: Path) -> None:
    code = ("import gc; from cli import startup; "
            "gc.disable(); startup.resume(); a = gc.isenabled(); "
            "gc.enable(); startup.pause(); b = gc.isenabled(); startup.resume(); "
            "c = gc.isenabled(); startup.resume(); print(a, b, c, gc.isenabled())")
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "True", "True"]


def test_a_command_builds_only_the_request_and_output_models_it_uses(
        tmp_path: Path) -> None:
    """Building a pydantic model's validator costs ~1-3 ms: the request and output models
    are built at their first use (``defer_build``), so a backup builds its request and the
    job's view, not the thirty others."""
    code = ("from pydantic import BaseModel; from common.jobs import inputs, views; "
            "models = lambda m: [v for v in vars(m).values() if isinstance(v, type) and "
            "issubclass(v, BaseModel) and v.__module__ == m.__name__]; "
            "built = lambda: sorted(c.__name__ for m in (inputs, views) for c in models(m) "
            "if c.__pydantic_complete__); before = built(); "
            "inputs.parse(inputs.BackupIn, {'volume': 'data', 'format': 'repo'}); "
            "print(before, built(), len(models(inputs)) + len(models(views)))")
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[] ['BackupIn'] "), done.stdout
    assert int(done.stdout.split()[-1]) > 20


def test_an_embedded_command_leaves_asyncio_and_ssl_unloaded(tmp_path: Path) -> None:
    """The embedded front imports SQLAlchemy, which imports asyncio (and it ssl): with
    ``defer_imports`` neither module's code runs in a command that does not use them.
    (The first command of a new home creates the database: SQLAlchemy's handling of the
    "no such table" it meets on the way reads asyncio's exceptions, so asyncio loads.)"""
    code = """
import json, sys
import cli.main
exit_now = cli.main._exit
def _exit(code):
    loaded = [m for m in ("asyncio", "ssl", "sqlalchemy")
              if type(sys.modules.get(m)).__name__ == "module"]
    sys.stderr.write("LOADED " + json.dumps(loaded) + "\\n")
    exit_now(code)
cli.main._exit = _exit
sys.argv = ["volkeeper", "targets", "list", "--json"]
cli.main.main()
"""
    first = _run(code, tmp_path)
    assert first.returncode == 0, first.stderr
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["name"] == "local"
    assert json.loads(done.stderr.split("LOADED ", 1)[1].splitlines()[0]) == ["sqlalchemy"]


def test_a_deferred_module_loads_at_its_first_use_and_works_as_imported(
        tmp_path: Path) -> None:
    code = """
import sys, threading
from cli import startup
startup.defer_imports(("asyncio", "ssl", "xmlrpc", "no_such_module_here"))
import asyncio, ssl, sqlalchemy  # sqlalchemy reads asyncio.iscoroutine as it loads
states = [type(sys.modules[m]).__name__ for m in ("asyncio", "ssl", "xmlrpc")]
assert "no_such_module_here" not in sys.modules
async def answer():
    await asyncio.sleep(0)
    return 42
results = []
def use():  # several threads at once: each waits for the one loading it
    results.append((asyncio.run(answer()), ssl.PROTOCOL_TLS_CLIENT.name))
threads = [threading.Thread(target=use) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
from asyncio import events  # a submodule, as the loaded package has it
import xmlrpc.client  # a submodule of a deferred package that was never used
print(states, [type(sys.modules[m]).__name__ for m in ("asyncio", "ssl")], results,
      events is sys.modules["asyncio.events"], xmlrpc.client.Fault(1, "x").faultCode,
      asyncio.iscoroutine is asyncio.coroutines.iscoroutine)
"""
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("] [", 1)[0] == "['_Deferred', '_Deferred', '_Deferred'"
    assert "['module', 'module']" in done.stdout  # each ran once used
    assert done.stdout.count("(42, 'PROTOCOL_TLS_CLIENT')") == 4
    assert done.stdout.rstrip().endswith("True 1 True"), done.stdout


def test_a_deferred_module_that_fails_to_load_fails_like_an_import(tmp_path: Path) -> None:
    (tmp_path / "broken_on_load.py").write_text("VALUE = 1\nraise RuntimeError('boom')\n")
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from cli import startup
startup.defer_imports(("broken_on_load",))
import broken_on_load
try:
    broken_on_load.VALUE
except RuntimeError as e:
    print("raised", e, "broken_on_load" in sys.modules)
try:
    import broken_on_load
except RuntimeError as e:
    print("again", e)
"""
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["raised boom False", "again boom"]


def test_a_command_looks_for_no_pydantic_plugins_unless_the_environment_asks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console script tells pydantic to skip its plugin search (the entry points of
    every installed distribution); ``PYDANTIC_DISABLE_PLUGINS`` set before, even empty,
    is left as it is."""
    code = """
import os, sys
import cli.main
exit_now = cli.main._exit
def _exit(code):
    from pydantic.plugin import _loader
    sys.stderr.write("PLUGINS %r %r\\n" % (os.environ.get("PYDANTIC_DISABLE_PLUGINS"),
                                           _loader._plugins))
    exit_now(code)
cli.main._exit = _exit
sys.argv = ["volkeeper", "targets", "list", "--json"]
cli.main.main()
"""
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "PLUGINS '__all__' None" in done.stderr  # never searched
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "")
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "PLUGINS '' {}" in done.stderr  # searched (none installed here)
