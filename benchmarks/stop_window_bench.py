"""How long a stop-mode backup keeps the application down: the stop window of an unchanged
re-backup of the mixed volume against that re-backup's own time.

Usage (root; a private dockerd is started in its own network namespace and stopped)::

    python benchmarks/stop_window_bench.py [--size 1G] [--repeats 3] \
        [--workdir /var/tmp/vkbench] [--checkout .]

The mixed volume (``dataset.py``) is backed up once to the native repository (untimed);
a busybox container uses it. Then, per repeat, interleaved: an unchanged re-backup
without a stop (``volkeeper backup VOL --format repo``: its job's own time, started →
finished) and one with ``--stop-containers`` (the container's ``seconds_down`` from the
job's ``stop_windows``: stop, back up, start). The target (issue 13): stop window ≤ 1.5x
the re-backup's own time — the stop and start cost little beside the backup. Prints a
table and a Markdown block for ``RESULTS.md``. Whole ``volkeeper`` processes in embedded
mode, as users run them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dataset import ensure, parse_size  # noqa: E402
from privdockerd import PrivateDockerd  # noqa: E402
from procs import fresh_dir, run  # noqa: E402

VOLUME = "mixed"
IMAGE = "vkbench-busybox:latest"
SERVE = "trap 'exit 0' TERM; sleep 3600 & wait"
TARGET = 1.5


def busybox(d: PrivateDockerd) -> str:
    """A runnable image from the host's static busybox (no registry needed)."""
    exe = shutil.which("busybox")
    if exe is None:
        raise SystemExit("busybox is not installed (apt-get install busybox-static)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(exe, arcname="bin/busybox")
        for name, kind, target in (("bin/sh", tarfile.SYMTYPE, "busybox"),
                                   ("bin/sleep", tarfile.SYMTYPE, "busybox"),
                                   ("data", tarfile.DIRTYPE, ""), ("tmp", tarfile.DIRTYPE, "")):
            entry = tarfile.TarInfo(name)
            entry.type, entry.linkname, entry.mode = kind, target, 0o755
            t.addfile(entry)
    repo, tag = IMAGE.split(":")
    with d.client() as api:
        api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag)
    return IMAGE


def job_seconds(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started_at"])
    return (datetime.fromisoformat(job["finished_at"]) - started).total_seconds()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1G")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workdir", default="/var/tmp/vkbench")
    p.add_argument("--checkout", default=str(HERE.parent))
    args = p.parse_args()
    size = parse_size(args.size)
    work = Path(args.workdir)
    run_dir = fresh_dir(work / "stopwin-run")
    data = ensure(work / f"data-{args.size}", size)
    checkout = Path(args.checkout).resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLKEEPER_", "DOCKER_"))}
    env |= {"PYTHONPATH": str(checkout), "VOLKEEPER_HOME": str(run_dir / "home"),
            "VOLKEEPER_HOST_NAME": "bench", "VOLKEEPER_REPOSITORY_UNENCRYPTED": "true"}
    cmd = [sys.executable, "-m", "cli.main", "backup", VOLUME, "--format", "repo", "--json"]
    plain: list[float] = []
    windows: list[float] = []
    stopped_jobs: list[float] = []
    with PrivateDockerd(run_dir / "dockerd") as d:
        env["VOLKEEPER_DOCKER_HOST"] = d.url
        path = d.create_volume(VOLUME)
        run(["cp", "-a", f"{data.root}/.", str(path)])
        image = busybox(d)
        with d.client() as api:
            ctr = api.create_container(image, ["sh", "-c", SERVE], host_config=(
                api.create_host_config(binds=[f"{VOLUME}:/data"], network_mode="none")))
            api.start(ctr["Id"])
        first = run(cmd, env=env, cwd=str(run_dir))
        print(f"first backup: {first.wall:.2f}s", flush=True)
        for i in range(args.repeats):
            for stop in ((False, True) if i % 2 == 0 else (True, False)):
                run(["sync"])
                m = run(cmd + (["--stop-containers"] if stop else []), env=env,
                        cwd=str(run_dir))
                job = json.loads(m.stdout)
                assert job["state"] == "succeeded", job.get("error")
                if stop:
                    [w] = job["result"]["stop_windows"]
                    windows.append(float(w["seconds_down"]))
                    stopped_jobs.append(job_seconds(job))
                else:
                    plain.append(job_seconds(job))
            print(f"repeat {i + 1}: re-backup {plain[-1]:.2f}s, stop window "
                  f"{windows[-1]:.2f}s (its job {stopped_jobs[-1]:.2f}s)", flush=True)
        with d.client() as api:
            api.remove_container(ctr["Id"], force=True)
    report(args, data.describe(), plain, windows, stopped_jobs)


def report(args: argparse.Namespace, dataset: str, plain: list[float], windows: list[float],
           stopped_jobs: list[float]) -> None:
    base, window = statistics.median(plain), statistics.median(windows)
    paired = sorted(w / b for w, b in zip(windows, plain, strict=True))
    ratio = window / base
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    def runs(xs: list[float]) -> str:
        return ", ".join(f"{x:.2f}" for x in xs)

    print(f"""
<!-- stop-window-run:start -->
Run of {datetime.now().strftime('%Y-%m-%d %H:%M')} UTC: {dataset}; {args.repeats} repeat(s);
{os.cpu_count()} CPUs, load {load}.

| what | median s | runs |
|---|---|---|
| unchanged re-backup (its job, no stop) | {base:.2f} | {runs(plain)} |
| stop window of the same with --stop-containers | {window:.2f} | {runs(windows)} |
| that stop-mode job | {statistics.median(stopped_jobs):.2f} | {runs(stopped_jobs)} |

- **stop window / re-backup = {ratio:.2f}** (medians; target ≤ {TARGET}: {verdict}); median
  of the per-repeat ratios {statistics.median(paired):.2f} ({runs(paired)}).
<!-- stop-window-run:end -->""")


if __name__ == "__main__":
    main()
