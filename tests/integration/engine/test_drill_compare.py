"""What a restore drill of an archive compares: mtimes too (besides type, size, mode,
owner, link, xattrs, sparseness and content). A manifest whose mtime disagrees with the
data must fail the drill, naming the file and the field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.embedded.test_embedded import cli, volume

pytestmark = pytest.mark.integration


def test_a_drill_compares_mtimes(embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "drill-mtime")
    (src / "a.txt").write_text("alpha")
    (src / "b.txt").write_text("beta")
    job = json.loads(cli(embedded_env, "backup", "drill-mtime", "--format", "tar.zst",
                         "--json").stdout)
    ok = json.loads(cli(embedded_env, "drill", job["backup_id"], "--json").stdout)
    assert ok["result"]["passed"] is True

    manifest = (Path(embedded_env["VOLKEEPER_HOME"]) / "backups"
                / (job["result"]["key"] + ".manifest.jsonl"))
    lines = manifest.read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if '"./b.txt"' in line)
    entry = json.loads(lines[i])
    entry["mtime"] -= 3600
    lines[i] = json.dumps(entry)
    # re-seal the summary, so only the mtime differs (not the manifest's own checksum)
    summary = json.loads(lines[-1])
    summary["lines_sha256"] = hashlib.sha256("".join(
        line + "\n" for line in lines[:-1]).encode()).hexdigest()
    lines[-1] = json.dumps(summary)
    manifest.write_text("\n".join(lines) + "\n")
    failed = json.loads(cli(embedded_env, "drill", job["backup_id"], "--json",
                            ok=False).stdout)
    assert failed["result"]["passed"] is False
    assert [p for p in failed["result"]["problems"] if p.startswith("./b.txt: mtime")]
    assert failed["result"]["problem_count"] == 1
