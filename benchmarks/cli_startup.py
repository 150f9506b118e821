"""Start-up time and memory of whole ``volkeeper`` processes, as users run them.

Measures ``volkeeper --help``, embedded read commands (``volumes --json`` with N volumes,
``backups --json``, ``jobs --json``) and a one-shot ``backup --format repo`` of a one-file
volume (after the warm-up, an unchanged re-backup: what is left is the command's start,
set-up and tear-down) beside two baselines measured in the same run: the bare
interpreter (``python -c pass``, the floor of any Python CLI) and ``docker volume ls`` (what
a user would type instead of ``volkeeper volumes``). Wall time (min and median of R runs
after one untimed warm-up: the first ``volumes`` registers the new volumes), CPU time (user +
system, min) and peak RSS of each process.

    python3 benchmarks/cli_startup.py --docker-host unix:///path/docker.sock [--volumes 100] \
        [--runs 7] [--checkout DIR ...]

``--checkout`` (repeatable; default this tree) names the volkeeper trees to run; with two
(say a copy of main and a branch) each command runs for both in turn, interleaved.

The volumes are created on that daemon (``bench-cli-N``) and left there; state goes to a
temporary ``VOLKEEPER_HOME``. Targets (issue 10): ``--help`` <= 0.2 s, ``volumes --json``
with 100 volumes <= 0.3 s, a read command <= 60 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, max RSS MiB) of one run of ``cmd``."""
    began = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - began
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        err = p.stderr.read().decode(errors="replace") if p.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err}")
    if p.stderr:
        p.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docker-host", required=True)
    ap.add_argument("--volumes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--checkout", action="append", type=Path,
                    help="a volkeeper tree to run (repeatable; default: this one)")
    args = ap.parse_args()
    trees = [c.resolve() for c in args.checkout or [REPO]]
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("VOLKEEPER_") and k != "PYTHONDONTWRITEBYTECODE"}
    base |= {"VOLKEEPER_DOCKER_HOST": args.docker_host, "VOLKEEPER_HOST_NAME": "bench",
             "DOCKER_HOST": args.docker_host}
    envs = {t: base | {"VOLKEEPER_HOME": tempfile.mkdtemp(prefix="vk-cli-bench-"),
                       "PYTHONPATH": str(t)} for t in trees}
    for i in range(args.volumes):
        subprocess.run(["docker", "volume", "create", f"bench-cli-{i}"], env=base,
                       stdout=subprocess.DEVNULL, check=True)
    tiny = subprocess.run(["docker", "volume", "create", "bench-cli-tiny"], env=base,
                          capture_output=True, text=True, check=True).stdout.strip()
    mountpoint = subprocess.run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", tiny],
                                env=base, capture_output=True, text=True, check=True).stdout
    if os.access(mountpoint.strip(), os.W_OK):  # else it stays empty
        Path(mountpoint.strip(), "hello.txt").write_text("hello\n")
    vk = [sys.executable, "-m", "cli.main"]
    rows = [("python -c pass (floor)", [sys.executable, "-c", "pass"]),
            ("docker volume ls (peer)", ["docker", "volume", "ls"]),
            ("volkeeper --help", [*vk, "--help"]),
            (f"volkeeper volumes --json ({args.volumes} volumes)", [*vk, "volumes", "--json"]),
            ("volkeeper backups --json", [*vk, "backups", "--json"]),
            ("volkeeper jobs --json", [*vk, "jobs", "--json"]),
            ("volkeeper backup (repo, one file, unchanged)",
             [*vk, "backup", tiny, "--format", "repo", "--json"])]
    print(f"{'command':<44} {'tree':<20} {'min s':>6} {'median s':>9} {'CPU s':>6} "
          f"{'RSS MiB':>8}   (load {os.getloadavg()[0]:.1f})")
    for label, cmd in rows:
        got: dict[Path, list[tuple[float, float, float]]] = {t: [] for t in trees}
        for _ in range(1 + args.runs):  # the first, untimed: a warm-up
            for t in trees if cmd[0] == sys.executable else trees[:1]:
                got[t].append(measure(cmd, envs[t], t))
        for t, runs in got.items():
            if not runs:
                continue
            walls = [r[0] for r in runs[1:]]
            print(f"{label:<44} {t.name[:20]:<20} {min(walls):6.3f} "
                  f"{statistics.median(walls):9.3f} {min(r[1] for r in runs[1:]):6.3f} "
                  f"{max(r[2] for r in runs[1:]):8.1f}")
    print(f"(load at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
