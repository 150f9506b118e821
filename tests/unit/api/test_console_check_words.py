"""The restore wizard and the job page show a restore's checks in the console's words:
the engine words its hints for the CLI (``--into NEW_NAME``, ``--mode replace``,
``--stop-containers``, ``--host``, which the CLI tests keep), the console maps them to
its own choices (``plainCheck``), and a target volume's state reads "is not empty", not
"not-empty" (``volumeState``). The engine's real texts are run through the console's
ui.js in node."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from common.engine import validate
from common.errors import NotFound
from tests.unit.api.test_console_assets import CONSOLE

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
Usage = namedtuple("Usage", "total used free")


class _Docker:
    def __init__(self, exists: bool, empty: bool, running: list[str]) -> None:
        self.exists, self.empty = exists, empty
        self.users = [SimpleNamespace(id=n, name=n, state="running") for n in running]

    def volume(self, name: str) -> Any:
        if not self.exists:
            raise NotFound("volume", name)
        return SimpleNamespace(containers=self.users, driver="local")

    def is_empty(self, name: str) -> bool:
        return self.empty


def _engine_texts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Each refused restore check's detail as the engine words it."""
    monkeypatch.setattr(validate, "direct_path", lambda *a: tmp_path)
    monkeypatch.setattr(validate, "_space_probe", lambda *a: tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: Usage(0, 0, 1))
    texts = []
    for check, docker in [
            (lambda v, d: validate._check_volume(v, d, "v", Any), _Docker(True, False, [])),
            (lambda v, d: validate._check_volume(v, d, "v", Any), _Docker(True, True, ["app"])),
            (lambda v, d: validate._check_replace(v, d, "v", Any, False),
             _Docker(False, True, [])),
            (lambda v, d: validate._check_replace(v, d, "v", Any, False),
             _Docker(True, False, ["app"])),
            (lambda v, d: validate._check_space(v, d, "v", Any), _Docker(True, True, []))]:
        v = validate.Validation(backup_id="b", host="h", volume="v", restore_bytes=1 << 30)
        check(v, docker)
        problem = v.first_problem()
        assert problem is not None
        texts.append(problem.detail)
    return texts


def _console(tmp_path: Path, texts: list[str], states: list[str]) -> dict[str, list[str]]:
    module = tmp_path / "ui.mjs"
    module.write_text((CONSOLE / "ui.js").read_text())
    script = (f"import {{ plainCheck, volumeState }} from {json.dumps(module.as_uri())};\n"
              "const [texts, states] = JSON.parse(process.argv[1]);\n"
              "console.log(JSON.stringify({ texts: texts.map(plainCheck),"
              " states: states.map(volumeState) }));\n")
    out = subprocess.run(["node", "--input-type=module", "-e", script,
                          json.dumps([texts, states])],
                         capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_restore_checks_read_without_cli_options(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    texts = _engine_texts(monkeypatch, tmp_path)
    assert all("--" in t for t in texts)  # the engine keeps the CLI's words
    shown = _console(tmp_path, texts, [])["texts"]
    for before, after in zip(texts, shown, strict=True):
        assert "--" not in after and "volkeeper rollback" not in after, (before, after)
        assert "  " not in after and " ," not in after
    assert shown[0].endswith("— restore into a new volume, or replace its content (a safety "
                             "snapshot is taken first; it can be rolled back afterwards)")
    assert "docker stop app" in shown[1]  # a Docker command, not a volkeeper option
    assert shown[4].endswith("free space on the host or restore to another host")


def test_volume_states_read_as_plain_words(tmp_path: Path) -> None:
    states = ["missing", "empty", "not-empty", "unknown"]
    shown = _console(tmp_path, ["unchanged text"], states)
    assert shown["texts"] == ["unchanged text"]
    assert shown["states"] == ["does not exist yet (it is created)", "is empty", "is not empty",
                               "was not checked"]
