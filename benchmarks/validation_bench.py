"""How long a migration's validation takes in the fleet (issue 14: "< 2 s"), as users ask.

    python benchmarks/validation_bench.py [--size 1G] [--repeat 8] \
        [--workdir /var/tmp/vkvalidate]

The fleet of ``migrate_fleet_bench.py`` (``fleetkit``: PostgreSQL, Redis, two private
dockerds as host-a and host-b, the API and a worker per host, production periods); the
mixed dataset in volume ``vv-src`` on host-a, used by an idle running container. Timed,
interleaved: ``POST /migrations`` with ``dry_run`` host-a → host-b until answered — the
same checks a migration's validation runs (the source's and the destination's check jobs
on their hosts' workers, the API's own):

- ``parallel``: a plain request: both sides' check jobs run at once, the destination's
  free space compared with the source's size by the API afterwards;
- ``sequential``: with ``recreate_containers`` (to another host): the destination must
  also find the source's containers' images, so its checks wait for the source's (as
  every validation did before; a few more checks of its own, each a dictionary lookup or
  one Docker call).

Prints the medians and each answer's seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from dataset import generate, parse_size  # noqa: E402
from fleetkit import add_target, mountpoint, private_fleet  # noqa: E402
from procs import Deleter, fresh_dir  # noqa: E402

from tests.fixtures.dockerd import busybox_image  # noqa: E402

SRC = "vv-src"
IDLE = "trap 'exit 0' TERM; while true; do sleep 0.2; done"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1G", help="size of the mixed dataset")
    p.add_argument("--repeat", type=int, default=8)
    p.add_argument("--workdir", default="/var/tmp/vkvalidate")
    args = p.parse_args()
    work = fresh_dir(Path(args.workdir))
    runs: dict[str, list[float]] = {"parallel": [], "sequential": []}
    try:
        with private_fleet(work) as fleet:
            a = fleet.docker["host-a"]
            a.client().volumes.create(SRC)
            info = generate(mountpoint(fleet, "host-a", SRC), parse_size(args.size))
            a.client().containers.run(busybox_image(a), ["sh", "-c", IDLE], detach=True,
                                      name="vv-app", network_mode="none",
                                      volumes={SRC: {"bind": "/data", "mode": "rw"}})
            fleet.wait_volume("host-a", SRC)
            busybox_image(fleet.docker["host-b"])  # the images check finds it there
            target = add_target(fleet, "vv", work / "targets" / "vv")
            body = {"volume": SRC, "host": "host-a", "to_host": "host-b",
                    "to_volume": "vv-dst", "via": target, "dry_run": True}
            print(f"dataset: {info.describe()}", flush=True)
            with fleet.http as c:
                for i in range(args.repeat + 1):
                    arms = ("parallel", "sequential") if i % 2 else ("sequential", "parallel")
                    for arm in arms:
                        extra = {"recreate_containers": True} if arm == "sequential" else {}
                        t = time.monotonic()
                        r = c.post("/migrations", json=body | extra)
                        took = time.monotonic() - t
                        out = r.json()
                        if r.status_code >= 400 or not out.get("ok"):
                            raise SystemExit(f"{arm}: {r.status_code} {out}")
                        if i:  # the first round warms the workers up
                            runs[arm].append(took)
                            print(f"  {arm}: {took:.3f} s", flush=True)
    finally:
        Deleter.remove([work])
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for arm, v in runs.items():
        print(f"{arm}: median {statistics.median(v):.3f} s; runs "
              + ", ".join(f"{x:.3f}" for x in v))


if __name__ == "__main__":
    main()
