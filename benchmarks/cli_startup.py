"""Start-up time and memory of whole ``volkeeper`` processes, as users run them.

Measures ``volkeeper --help`` and embedded read commands (``volumes --json`` with N volumes,
``backups --json``, ``jobs --json``) beside two baselines measured in the same run: the bare
interpreter (``python -c pass``, the floor of any Python CLI) and ``docker volume ls`` (what
a user would type instead of ``volkeeper volumes``). Wall time (min and median of R runs)
and peak RSS of each process.

    python3 benchmarks/cli_startup.py --docker-host unix:///path/docker.sock [--volumes 100]

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


def measure(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """(min s, median s, max RSS MiB) of ``runs`` runs of ``cmd``."""
    times, rss = [], []
    for _ in range(runs):
        began = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        times.append(time.perf_counter() - began)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err = p.stderr.read().decode(errors="replace") if p.stderr else ""
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err}")
        if p.stderr:
            p.stderr.close()
        rss.append(usage.ru_maxrss / 1024)
    return min(times), statistics.median(times), max(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docker-host", required=True)
    ap.add_argument("--volumes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
    home = tempfile.mkdtemp(prefix="vk-cli-bench-")
    env |= {"VOLKEEPER_HOME": home, "VOLKEEPER_DOCKER_HOST": args.docker_host,
            "VOLKEEPER_HOST_NAME": "bench", "DOCKER_HOST": args.docker_host,
            "PYTHONPATH": str(REPO)}
    for i in range(args.volumes):
        subprocess.run(["docker", "volume", "create", f"bench-cli-{i}"], env=env,
                       stdout=subprocess.DEVNULL, check=True)
    vk = [sys.executable, "-m", "cli.main"]
    subprocess.run([*vk, "backups"], env=env, stdout=subprocess.DEVNULL, check=True)  # schema
    rows = [("python -c pass (floor)", [sys.executable, "-c", "pass"]),
            ("docker volume ls (peer)", ["docker", "volume", "ls"]),
            ("volkeeper --help", [*vk, "--help"]),
            (f"volkeeper volumes --json ({args.volumes} volumes)", [*vk, "volumes", "--json"]),
            ("volkeeper backups --json", [*vk, "backups", "--json"]),
            ("volkeeper jobs --json", [*vk, "jobs", "--json"])]
    load = os.getloadavg()[0]
    print(f"{'command':<44} {'min s':>6} {'median s':>9} {'RSS MiB':>8}   (load {load:.1f})")
    floor = None
    for label, cmd in rows:
        lo, med, rss = measure(cmd, env, args.runs)
        floor = floor or lo
        print(f"{label:<44} {lo:6.3f} {med:9.3f} {rss:8.1f}   {lo / floor:4.1f}x floor")


if __name__ == "__main__":
    main()
