"""Benchmark of a PostgreSQL dump backup (``volkeeper backup VOL --dump postgres``, the
whole CLI process as a user runs it) against ``pg_dumpall | zstd -T0 > file``.

Usage::

    python benchmarks/dump_bench.py [--scale 70] [--repeat 3] \
        [--workdir /var/tmp/vkbench-dump] [--no-results]

A private dockerd (``privdockerd``) runs the PostgreSQL image the tests build
(``tests/fixtures/dbimages.py``: debootstrap + docker import, no registry); the database
is made by ``pgbench -i -s SCALE`` (scale 70 ≈ 1 GiB in PostgreSQL, a ~0.7 GiB dump).
Baseline: ``docker exec -u postgres CTR pg_dumpall --clean --if-exists | zstd -T0 -3 >
FILE`` — the same dump command volkeeper runs, through the same exec API, compressed
and written to a file on the host. volkeeper: ``python -m cli.main backup VOL --dump
postgres --format repo`` (embedded, a new repository for each first backup; a second,
unchanged run is reported too) and ``--format tar.zst``. Runs are interleaved;
medians are reported; the target is volkeeper/baseline ≤ 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from privdockerd import PrivateDockerd  # noqa: E402

from tests.fixtures.dbimages import import_image  # noqa: E402
from tests.fixtures.embedded import embedded_environment  # noqa: E402

TARGET = 1.2
DUMP = "pg_dumpall --clean --if-exists"
START, END = "<!-- dump-run start -->", "<!-- dump-run end -->"


def timed(cmd: list[str] | str, env: dict[str, str] | None = None) -> float:
    began = time.monotonic()
    p = subprocess.run(cmd, shell=isinstance(cmd, str), env=env, cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return time.monotonic() - began


def setup_db(d: PrivateDockerd, scale: int) -> tuple[str, str]:
    import docker

    client = docker.DockerClient(base_url=d.url, timeout=600)
    image = import_image(client)
    volume, name = "benchpg", "benchpg-db"
    for c in client.containers.list(all=True, filters={"name": name}):
        c.remove(force=True)
    client.volumes.create(volume)
    ctr = client.containers.run(image, ["postgres"], detach=True, network_mode="none",
                                name=name, volumes={volume: {"bind": "/var/lib/postgresql/data"}})
    for _ in range(600):
        if ctr.exec_run(["pg_isready", "-q"], user="postgres").exit_code == 0:
            break
        time.sleep(0.2)
    have = ctr.exec_run(["psql", "-XAtc", "SELECT count(*) FROM pgbench_accounts"],
                        user="postgres")
    if have.exit_code != 0 or int(have.output or 0) != scale * 100_000:
        r = ctr.exec_run(["pgbench", "-i", "-q", "-s", str(scale), "postgres"], user="postgres")
        if r.exit_code != 0:
            raise SystemExit(r.output.decode(errors="replace"))
    size = ctr.exec_run(["psql", "-XAtc", "SELECT pg_database_size('postgres')"],
                        user="postgres").output.decode().strip()
    return name, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=70)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/vkbench-dump"))
    ap.add_argument("--no-results", action="store_true")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    with PrivateDockerd(a.workdir / "docker") as d:
        name, db_bytes = setup_db(d, a.scale)
        docker_cli = f"docker -H {d.url}"
        out = a.workdir / "dump.sql.zst"
        base: list[float] = []
        vk: dict[str, list[float]] = {"repo": [], "repo-unchanged": [], "tar.zst": []}
        home = a.workdir / "vk-home"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        env = embedded_environment(home, d.url) | {"VOLKEEPER_REPOSITORY_UNENCRYPTED": "true"}
        timed([sys.executable, "-m", "cli.main", "volumes", "--json"], env)  # creates home
        cli = [sys.executable, "-m", "cli.main", "backup", "benchpg", "--dump", "postgres"]
        for _ in range(a.repeat):
            base.append(timed(f"{docker_cli} exec -u postgres {name} {DUMP} | zstd -q -T0 -3 "
                              f"> {out}"))
            shutil.rmtree(home / "backups", ignore_errors=True)  # a first backup each time
            vk["repo"].append(timed([*cli, "--format", "repo"], env))
            vk["repo-unchanged"].append(timed([*cli, "--format", "repo"], env))
            vk["tar.zst"].append(timed([*cli, "--format", "tar.zst"], env))
        raw = subprocess.run(f"{docker_cli} exec -u postgres {name} {DUMP} | wc -c",
                             shell=True, capture_output=True, text=True).stdout
        shutil.rmtree(home, ignore_errors=True)
        dump_size = out.stat().st_size
        out.unlink()
    b = statistics.median(base)
    rows = {k: (statistics.median(v), statistics.median(v) / b) for k, v in vk.items()}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"### Dump run of {stamp} (`dump_bench.py --scale {a.scale} --repeat {a.repeat}`,"
             f" {os.cpu_count()} cores)", "",
             f"PostgreSQL 15 database of {int(db_bytes) / 2**20:.0f} MiB (pgbench scale "
             f"{a.scale}); its `pg_dumpall` is {int(raw) / 2**20:.0f} MiB of SQL, "
             f"{dump_size / 2**20:.1f} MiB after zstd -3 (pgbench's filler columns are "
             "blanks). volkeeper's times are whole CLI processes (start-up included) on a "
             "warm embedded home; the repository is new for each first backup.", "",
             "| run | median s | vs baseline (target ≤ 1.2) |", "|---|---|---|",
             f"| baseline `docker exec … {DUMP} \\| zstd -T0 -3 > file` | {b:.2f} | 1.00 |"]
    for k, (t, r) in rows.items():
        lines.append(f"| `volkeeper backup --dump postgres --format {k.split('-')[0]}`"
                     f"{' (second, unchanged)' if 'unchanged' in k else ''} | {t:.2f} | "
                     f"{r:.2f}{'' if r <= TARGET else ' (over)'} |")
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"baseline": base, **vk}))
    if not a.no_results:
        results = HERE / "RESULTS.md"
        s = results.read_text()
        block = f"{START}\n{text}\n{END}"
        if START in s:
            s = s[:s.index(START)] + block + s[s.index(END) + len(END):]
        else:
            s += ("\n## Database dump streaming (issue 13; `python benchmarks/dump_bench.py`)\n\n"
                  "Whole `volkeeper backup --dump postgres` processes (start-up included) "
                  "against the dump piped into zstd and a file, same dump command, same exec "
                  "API. The block below is rewritten by every run without `--no-results`.\n\n"
                  + block + "\n")
        results.write_text(s)


if __name__ == "__main__":
    main()
