"""A private dockerd for the benchmarks, in a network namespace of its own.

Like ``tests/fixtures/dockerd.py``: its own ``--data-root`` (here under the benchmark's
workdir, so volumes live on the same file system as the peer's directories), exec-root,
pidfile and unix socket (under a short ``/tmp/vkb-…`` directory: socket paths must stay
under ~107 bytes), no bridge, no iptables. It runs under ``unshare --net`` with loopback
up, so ``--bridge=none`` cannot delete the host's ``docker0``. ``stop()`` ends it, its
containerd and leftover mounts; always call it (``with PrivateDockerd(...) as d:``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import docker


class PrivateDockerd:
    """One private daemon; ``url`` for clients, ``mountpoint(name)`` for a volume's files."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root
        self.run_dir = Path(tempfile.mkdtemp(prefix="vkb-", dir="/tmp"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.run_dir}/docker.sock"

    def mountpoint(self, volume: str) -> Path:
        return self.data_root / "volumes" / volume / "_data"

    def __enter__(self) -> PrivateDockerd:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        for tool in ("dockerd", "containerd", "runc", "unshare", "ip"):
            if not shutil.which(tool):
                raise SystemExit(f"{tool} is not installed: the benchmark needs a private "
                                 "dockerd (apt-get install docker.io iproute2)")
        if os.geteuid() != 0:
            raise SystemExit("a private dockerd needs root")
        self.data_root.mkdir(parents=True, exist_ok=True)
        r = self.run_dir
        netns = ["unshare", "--net", "--", "/bin/sh", "-c",
                 f'{shlex.quote(shutil.which("ip") or "ip")} link set lo up && exec "$@"', "sh"]
        args = [*netns, "dockerd", f"--data-root={self.data_root}", f"--exec-root={r}/exec",
                f"--pidfile={r}/dockerd.pid", f"--host={self.url}", "--bridge=none",
                "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                "--userland-proxy=false"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        with open(r / "dockerd.log", "wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(Exception), docker.APIClient(base_url=self.url,
                                                                  timeout=5) as api:
                if api.ping():
                    return
            time.sleep(0.1)
        tail = (r / "dockerd.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise SystemExit(f"the private dockerd did not start:\n{tail}")

    def client(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.url, timeout=120)

    def create_volume(self, name: str) -> Path:
        with self.client() as api:
            api.create_volume(name)
        return self.mountpoint(name)

    def remove_volume(self, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound), self.client() as api:
            api.remove_volume(name, force=True)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, wait, SIGKILL; then its containerd, leftover mounts, the run directory.
        The data root (and the volumes in it) stays for the next run unless removed."""
        p = self.process
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout)
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            pid = int((self.run_dir / "exec" / "containerd" / "containerd.pid").read_text())
            os.kill(pid, signal.SIGTERM)
        for root in (self.run_dir, self.data_root):
            prefix = str(root) + "/"
            with open("/proc/self/mountinfo") as f:
                targets = {ln.split()[4] for ln in f if ln.split()[4].startswith(prefix)}
            for target in sorted(targets, key=len, reverse=True):
                subprocess.run(["umount", "-l", target], capture_output=True, check=False)
        shutil.rmtree(self.run_dir, ignore_errors=True)
