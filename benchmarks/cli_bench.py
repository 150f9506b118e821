"""The ``volkeeper`` command as users run it, side by side with restic 0.14 and tar | zstd.

Usage (root; a private dockerd is started in its own network namespace and stopped)::

    python benchmarks/cli_bench.py [--size 1G] [--repeats 3] [--only STEPS] \
        [--workdir /var/tmp/vkbench] [--checkout .] [--keep]

Every figure is a whole process, start-up included: the ``volkeeper`` console script (or
``python -m cli.main`` / ``workers.cli.main`` when the installed script does not match
the checkout) in embedded mode (SQLite under a fresh ``VOLKEEPER_HOME`` per repeat), and
the peer's CLI in the same run, interleaved (volkeeper first in even repeats, the peer
first in odd ones), ``sync`` untimed before each timed command, caches warm for both (the
volume is read once before the first run). Medians of ``--repeats`` (start-up steps: of
``max(5, --repeats)`` after one warm-up). Steps (``--only`` takes a comma list):

- ``help``: ``volkeeper --help`` ≤ 0.2 s (peer: ``restic version``, a process start);
- ``volumes``: ``volkeeper volumes --json`` with 100 small volumes on the private daemon
  ≤ 0.3 s (peer: ``docker volume ls``);
- ``first``, ``unchanged``, ``changed``: ``volkeeper backup VOL --format repo`` of the
  mixed volume (``dataset.py``) vs ``restic backup .`` in the volume's directory: first,
  again unchanged, after ``dataset.mutate`` changed 5 % in place — target ≤ 0.7x;
- ``restore``: ``volkeeper restore ID --into NEW`` vs ``restic restore latest --target
  DIR`` (same file system) ≤ 0.7x; both restored trees are checked (files, bytes);
- ``tar-backup``: ``volkeeper backup VOL --format tar.zst`` vs ``tar -c -C DIR . | zstd
  -L -T0 > file`` ≤ 1.2x, both at the same zstd level ``L`` (``--zstd-level``, default 1:
  volkeeper's default ``VOLKEEPER_ZSTD_LEVEL``; ``--zstd-level 3`` for zstd's own
  default); ``tar-restore``: its restore into a new volume vs ``zstd -dc file | tar -x -C
  DIR`` ≤ 1.0x;
- ``backups``: ``volkeeper backups --json`` (a read command) peak RSS ≤ 60 MB (peer:
  ``restic snapshots --json``).

- ``api``: ``POST /api/v1/backups`` on a running ``volkeeper serve`` (embedded), timed until
  its job is done, beside an unchanged ``restic backup`` (reported, no target).

Same key-derivation cost for both: restic calibrates scrypt at ``init`` (N, r, p; under
load it may pick p=2); volkeeper (r=8, p=1) gets the N of the same N·r·p work through
``VOLKEEPER_REPOSITORY_KDF_N``, and its repository is created by an untimed backup of a
small volume, as restic's by its untimed ``init``. Peak RSS is of the whole process tree
(the command and its worker processes; see ``procs.py``). Prints a table and a Markdown
block for ``RESULTS.md`` (``cli_report.py``). ``--keep`` leaves the run directory
(``WORKDIR/cli-run-CHECKOUT``: the daemon's data root with every volume, repositories,
restored trees) for a look; without it everything but the generated data set is removed.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cli_report import PEERS, Runs, markdown, print_table  # noqa: E402
from dataset import MiB, ensure, mutate, parse_size, revert  # noqa: E402
from privdockerd import PrivateDockerd  # noqa: E402
from procs import Deleter, Measured, fresh_dir, machine, run, sh, tree_stats  # noqa: E402

STEPS = ("help", "volumes", "first", "unchanged", "changed", "restore", "tar-backup",
         "tar-restore", "backups", "api")
REPO_STEPS = ("first", "unchanged", "changed", "restore")
VOL, SMALL_VOLUMES = "vkb-data", 100
PASSWORD = "vkbench-password"


def volkeeper_cmd(checkout: Path) -> tuple[list[str], str]:
    """The ``volkeeper`` console script if it runs this checkout's CLI, else ``python -m``."""
    exe = shutil.which("volkeeper")
    if exe and "/shims/" in exe:  # pyenv's shim is a shell script in front of the real one
        real = subprocess.run(["pyenv", "which", "volkeeper"], capture_output=True,
                              text=True, check=False).stdout.strip()
        exe = real or exe
    if exe:
        m = re.search(r"^from ([\w.]+) import main", Path(exe).read_text(errors="replace"),
                      re.M)
        if m and (checkout / (m.group(1).replace(".", "/") + ".py")).exists():
            return [exe], f"`{exe}` (console script, {m.group(1)})"
    for mod in ("cli.main", "workers.cli.main"):
        if (checkout / (mod.replace(".", "/") + ".py")).exists():
            return [sys.executable, "-m", mod], f"`python -m {mod}`"
    raise SystemExit(f"no volkeeper CLI in {checkout}")


class Bench:
    """The private daemon, the environments of both tools and every measurement."""

    def __init__(self, args: argparse.Namespace, d: PrivateDockerd, run_dir: Path) -> None:
        self.args, self.d, self.run_dir = args, d, run_dir
        self.checkout = Path(args.checkout).resolve()
        self.vk_cmd, self.vk_desc = volkeeper_cmd(self.checkout)
        self.pwfile = run_dir / "password"
        self.pwfile.write_text(PASSWORD + "\n")
        self.res: Runs = {s: {"vk": [], "peer": []} for s in STEPS}
        self.kdf, self.vk_n = (0, 0, 0), 0
        self.home = run_dir / "home-start"
        self.store = ""

    # --- the two tools -----------------------------------------------------------------
    def vk_env(self) -> dict[str, str]:
        # as installed: bytecode compiled once (a machine with PYTHONDONTWRITEBYTECODE, like
        # this VM, would otherwise recompile the whole package in every process)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLKEEPER_",
               "DOCKER_")) and k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"PYTHONPATH": str(self.checkout), "VOLKEEPER_HOME": str(self.home),
                "VOLKEEPER_DOCKER_HOST": self.d.url,
                "VOLKEEPER_REPOSITORY_PASSWORD_FILE": str(self.pwfile)}
        if self.vk_n:
            env["VOLKEEPER_REPOSITORY_KDF_N"] = str(self.vk_n)
        env["VOLKEEPER_ZSTD_LEVEL"] = str(self.args.zstd_level)  # the peer's level too
        return env

    def vk(self, *args: str) -> Measured:
        return run([*self.vk_cmd, *args], env=self.vk_env(), cwd=str(self.run_dir), tree=True)

    def restic(self, *args: str, cwd: str | None = None) -> Measured:
        env = dict(os.environ, RESTIC_PASSWORD_FILE=str(self.pwfile),
                   RESTIC_CACHE_DIR=str(self.run_dir / "restic-cache"))
        return run(["restic", "-r", self.store, "-q", *args], env=env, cwd=cwd, tree=True)

    # --- measuring ---------------------------------------------------------------------
    def pair(self, step: str, i: int, vk: Callable[[], Measured],
             peer: Callable[[], Measured], record: bool = True) -> None:
        """Both tools once, in the order of repeat ``i``; ``sync`` untimed before each."""
        order = [("vk", vk), ("peer", peer)]
        for who, fn in order if i % 2 == 0 else order[::-1]:
            os.sync()
            m = fn()
            if record:
                self.res[step][who].append(m)
            if record or self.args.verbose:
                print(f"  #{i + 1} {step:11s} {'volkeeper' if who == 'vk' else PEERS[step]:24s}"
                      f" {m.wall:7.2f}s wall {m.cpu:6.1f}s cpu {m.tree_rss_kib / 1024:6.0f} "
                      "MiB rss (tree)" + ("" if record else " (untimed)"), flush=True)

    def startup_steps(self, steps: list[str]) -> None:
        """help and volumes (100 small volumes, no big one yet), after one warm-up."""
        for s in ("help", "volumes"):
            if s not in steps:
                continue
            args = ["--help"] if s == "help" else ["volumes", "--json"]
            peer = (["restic", "version"] if s == "help" else
                    ["docker", "-H", self.d.url, "volume", "ls", "--format", "json"])
            for i in range(1 + max(5, self.args.repeats)):
                self.pair(s, i, functools.partial(self.vk, *args),
                          functools.partial(run, peer, tree=True), record=i > 0)

    def new_repositories(self, i: int) -> None:
        """A fresh restic repository (untimed init), a fresh volkeeper home whose
        repository is created by an untimed backup of a small volume, at restic's cost."""
        self.store = str(fresh_dir(self.run_dir / f"store-restic-{i}"))
        fresh_dir(self.run_dir / "restic-cache")
        self.restic("init", "--repository-version", "2")
        key = json.loads(next(Path(self.store, "keys").iterdir()).read_text())
        self.kdf = (key["N"], key["r"], key["p"])
        # scrypt's work is N*r*p; volkeeper has r=8, p=1 and a power-of-two N: the nearest
        work = key["N"] * key["r"] * key["p"] / 8
        # volkeeper refuses N below 2**14 for new key files: never go under it
        self.vk_n = max(1 << round(math.log2(work)), 1 << 14)
        if self.vk_n != work:
            print(f"  WARNING: restic's scrypt N={key['N']} r={key['r']} p={key['p']} has no "
                  f"equal-cost N at r=8, p=1; volkeeper gets N={self.vk_n}", flush=True)
        self.home = fresh_dir(self.run_dir / f"home-{i}")
        self.vk("backup", "vkb-v000", "--format", "repo", "--json")

    def vk_backup(self, fmt: str) -> Measured:
        m = self.vk("backup", VOL, "--format", fmt, "--json")
        m.stdout = backup_id(m.stdout)
        return m

    def vk_restore(self, backup: str, into: str, want: tuple[int, int]) -> Measured:
        m = self.vk("restore", backup, "--into", into, "--json")
        check_tree(f"volkeeper restore into {into}", str(self.d.mountpoint(into)), want)
        return m

    def peer_restore(self, cmd: Callable[[str], Measured], dest: Path,
                     want: tuple[int, int]) -> Measured:
        m = cmd(str(fresh_dir(dest)))
        check_tree(f"restore into {dest}", str(dest), want)
        return m

    def rounds(self, steps: list[str], mp: Path, want: tuple[int, int]) -> None:
        """Per repeat: fresh repositories, then the repository and archive steps; then the
        read command against the last repeat's catalog and repository."""
        revert(mp, self.run_dir / "mutation-originals")  # left by an interrupted run
        for i in range(self.args.repeats):
            self.new_repositories(i)
            self.one_round(i, steps, mp, want)
        if "backups" in steps:
            if not self.store:
                self.new_repositories(0)
            for i in range(1 + max(5, self.args.repeats)):
                self.pair("backups", i, lambda: self.vk("backups", "--json"),
                          lambda: self.restic("snapshots", "--json"), record=i > 0)
        if "api" in steps:
            if not self.store:
                self.new_repositories(0)
            self.api_steps(mp)

    def api_steps(self, mp: Path) -> None:
        """``volkeeper serve`` (embedded, a fresh home): ``POST /api/v1/backups`` of the
        volume, timed until its job is done (polled every 20 ms), beside an unchanged
        ``restic backup``; the first (untimed) creates the repository. CPU: the server's."""
        import httpx

        self.home = fresh_dir(self.run_dir / "home-api")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with open(self.run_dir / "serve.log", "wb") as log:
            serve = subprocess.Popen([*self.vk_cmd, "serve", "--port", str(port)],
                                     env=self.vk_env(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=60) as http:
                deadline = time.monotonic() + 120
                while not _answers(http):
                    if serve.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("volkeeper serve did not answer:\n" + (
                            self.run_dir / "serve.log").read_text(errors="replace")[-2000:])
                    time.sleep(0.1)
                # the embedded API is locked by default: the admin token serve created
                token = (self.home / "api.token").read_text().strip()
                http.headers["Authorization"] = f"Bearer {token}"

                def post() -> Measured:
                    cpu0, t0 = proc_cpu(serve.pid), time.monotonic()
                    resp = http.post("/backups", json={"volume": VOL, "format": "repo"})
                    resp.raise_for_status()
                    job = resp.json()
                    while job["state"] not in ("succeeded", "failed", "cancelled"):
                        time.sleep(0.02)
                        job = http.get(f"/jobs/{job['id']}").json()
                    if job["state"] != "succeeded":
                        raise SystemExit(f"the API backup failed: {job.get('error')}")
                    return Measured(time.monotonic() - t0, proc_cpu(serve.pid) - cpu0, 0, 0,
                                    "", "", 0)

                for i in range(1 + self.args.repeats):
                    self.pair("api", i, post, lambda: self.restic(
                        "backup", "--host", "bench", ".", cwd=str(mp)), record=i > 0)
        finally:
            serve.terminate()
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()

    def one_round(self, i: int, steps: list[str], mp: Path, want: tuple[int, int]) -> None:
        ids: dict[str, str] = {}
        tar_file = self.run_dir / f"base-{i}.tar.zst"

        def backup(step: str, fmt: str = "repo") -> None:
            def vk() -> Measured:
                m = self.vk_backup(fmt)
                ids[fmt] = m.stdout
                return m

            tar = f"tar -c -C {mp} . | zstd -q -{self.args.zstd_level} -T0 > {tar_file}"
            peer = ((lambda: sh(tar, tree=True)) if fmt == "tar.zst" else
                    (lambda: self.restic("backup", "--host", "bench", ".", cwd=str(mp))))
            self.pair(step, i, vk, peer, record=step in steps)

        def restore(step: str, fmt: str, peer: Callable[[str], Measured]) -> None:
            Deleter.wait_quiet()
            dest = self.run_dir / f"restore-{fmt}-{i}"
            self.pair(step, i, lambda: self.vk_restore(ids[fmt], f"vkb-{step}-{i}", want),
                      lambda: self.peer_restore(peer, dest, want))

        if set(steps) & set(REPO_STEPS):
            save = self.run_dir / "mutation-originals"
            backup("first")
            if "unchanged" in steps:
                backup("unchanged")
            try:
                if "changed" in steps:
                    changed = mutate(mp, save, 0.05, seed=100 + i)
                    print(f"  changed {changed / MiB:.0f} MiB in place", flush=True)
                    backup("changed")
                if "restore" in steps:
                    restore("restore", "repo",
                            lambda d: self.restic("restore", "latest", "--target", d))
            finally:
                revert(mp, save)
        if {"tar-backup", "tar-restore"} & set(steps):
            backup("tar-backup", "tar.zst")
            if "tar-restore" in steps:
                restore("tar-restore", "tar.zst",
                        lambda d: sh(f"zstd -q -dc {tar_file} | tar -x -C {d}", tree=True))


def _answers(http: Any) -> bool:
    try:
        return bool(http.get("/health").status_code == 200)
    except Exception:  # noqa: BLE001 - not up yet
        return False


def proc_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` and its reaped children so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def backup_id(stdout: str) -> str:
    """The backup id in ``volkeeper backup --json``'s output (the finished job)."""
    job = json.loads(stdout)
    found = (job.get("result") or {}).get("backup_id") or job.get("backup_id")
    if not found:
        raise SystemExit(f"no backup id in volkeeper's output:\n{stdout[:2000]}")
    return str(found)


def check_tree(what: str, root: str, want: tuple[int, int]) -> None:
    got = tree_stats(root)
    if got != want:
        raise SystemExit(f"{what} is WRONG: {got} (files, bytes) != source {want}")


def fill_small_volumes(d: PrivateDockerd) -> None:
    for n in range(SMALL_VOLUMES):
        mp = d.create_volume(f"vkb-v{n:03d}")
        for k in range(3):
            (mp / f"file-{k}.txt").write_text(f"volume {n} file {k}\n" * (1 + 50 * k))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1G", help="size of the mixed volume")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default=",".join(STEPS), help="comma list of " + ", ".join(STEPS))
    p.add_argument("--workdir", default="/var/tmp/vkbench")
    p.add_argument("--checkout", default=str(HERE.parent), help="the volkeeper tree to run")
    p.add_argument("--zstd-level", type=int, default=1, help="zstd level of both the "
                   "tar.zst backup (VOLKEEPER_ZSTD_LEVEL) and its peer (zstd -L)")
    p.add_argument("--keep", action="store_true", help="keep the run directory (volumes, "
                   "repositories, restored trees) for a look; dockerd is stopped anyway")
    p.add_argument("--verbose", action="store_true", help="print untimed runs too")
    args = p.parse_args()
    steps = [s for s in args.only.split(",") if s]
    if unknown := set(steps) - set(STEPS):
        raise SystemExit(f"unknown steps {sorted(unknown)}; choose from {', '.join(STEPS)}")
    work = Path(args.workdir)
    # the package's bytecode, as `pip install` leaves it (untimed)
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(
        str(Path(args.checkout) / d) for d in ("api", "cli", "common", "workers"))],
        check=True)
    # one run directory per checkout (two can bench side by side); restored trees stay
    # until the end: a mass delete slows file creation on ext4 for ~30 s
    run_dir = work / f"cli-run-{HERE.parent.name}"
    Deleter.remove([run_dir])
    run_dir.mkdir(parents=True)
    mach = machine(restic=["restic", "version"], tar=["tar", "--version"],
                   zstd=["zstd", "--version"])
    print("machine:", mach, flush=True)
    started = time.monotonic()
    info = None
    with PrivateDockerd(run_dir / "dockerd") as d:
        try:
            b = Bench(args, d, run_dir)
            print(f"volkeeper: {b.vk_desc}; dockerd {d.url}", flush=True)
            fill_small_volumes(d)
            b.startup_steps(steps)
            if set(steps) - {"help", "volumes"}:
                info = ensure(work / f"data-{args.size}", parse_size(args.size))
                print(f"dataset {args.size}: {info.describe()}", flush=True)
                mp = d.create_volume(VOL)
                subprocess.run(["cp", "-a", "--sparse=always", f"{info.root}/.", str(mp)],
                               check=True)
                # warm the page cache, untimed (not "tar -cf /dev/null": tar skips reads)
                sh(f"tar -cf - -C {mp} . | cat > /dev/null")
                b.rounds(steps, mp, tree_stats(str(mp)))
        finally:
            d.stop()
            if not args.keep:
                shutil.rmtree(run_dir, ignore_errors=True)
    print()
    print_table(b.res)
    print()
    facts = ["Machine: " + ", ".join(f"{k} {v}" for k, v in mach.items()), "",
             f"volkeeper CLI: {b.vk_desc}, embedded, checkout `{b.checkout}`. Key derivation "
             f"at the same cost: restic's calibration N, r, p = {b.kdf}, volkeeper's "
             f"N = {b.vk_n} (r=8, p=1: the same N·r·p, or the nearest)."]
    if info:
        facts.append(f"Dataset ({args.size}, seed 42): {info.describe()}.")
    print(markdown(b.res, facts, args.repeats, time.monotonic() - started))


if __name__ == "__main__":
    main()
