"""Worker processes start lean: without ``site``, their packages found on this process's path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import common
from common.repository.backup.workers import ProcessReaders
from common.repository.restore.workers import WORKER_MODULE
from common.repository.system.worker_pipe import worker_command, worker_env


def test_a_worker_runs_without_site_and_still_finds_every_package_it_needs() -> None:
    cmd = worker_command(WORKER_MODULE)
    assert cmd == [sys.executable, "-S", "-m", "common.repository.restore.worker_main"]
    probe = ("import sys, blake3, zstandard, cryptography.hazmat.primitives.ciphers.aead\n"
             "import common.repository.restore.worker_main, common.repository.backup.worker_main\n"
             "print(sys.flags.no_site, 'site' in sys.modules)")
    out = subprocess.run([*cmd[:-2], "-c", probe], env=worker_env(), capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout.split() == ["1", "False"]


@pytest.mark.parametrize("module", [WORKER_MODULE, ProcessReaders.MODULE])
def test_a_worker_imports_none_of_its_parent_side(module: str) -> None:
    probe = (f"import sys, {module}\n"
             "print(sorted(m for m in sys.modules if m in ('concurrent.futures', 'subprocess',\n"
             "    'logging', 'common.repository.system.worker_pipe',\n"
             "    'common.repository.restore.workers', 'common.repository.backup.workers',\n"
             "    'common.repository.backup.read')))")
    out = subprocess.run([*worker_command("x")[:-2], "-c", probe], env=worker_env(),
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_worker_path_is_this_checkout_then_this_process_path_in_order(monkeypatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)  # as from an editable install
    env = worker_env()
    paths = env["PYTHONPATH"].split(os.pathsep)
    assert paths[0] == str(Path(common.__file__).resolve().parents[1])
    mine = [p for p in sys.path if p and p != paths[0]]
    assert paths[1:] == list(dict.fromkeys(mine))
    out = subprocess.run([*worker_command("x")[:-2], "-c", "import common; print(common.__file__)"],
                         env=env, cwd="/", capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == common.__file__
