"""Retention decision speed: ``common.policies.retention.decide`` over N backups of one
volume (default 10,000: a backup every 37 minutes for ~8.5 months) with every rule set,
against sorting the same list by time (the least any decision must do), same run.

    python benchmarks/retention_bench.py [--n 10000] [--repeat 5]

Target (issue 12): a retention decision over 10,000 backups of one volume < 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from common.policies.retention import Item, decide

RULES = {"keep_last": 10, "keep_hourly": 48, "keep_daily": 14, "keep_weekly": 8,
         "keep_monthly": 12, "keep_yearly": 3, "keep_within": "2d", "keep_tag": ["release"]}


def items(n: int) -> list[Item]:
    t0 = datetime(2026, 12, 6, 12, tzinfo=UTC)
    return [Item(f"b{k:06d}", t0 - timedelta(minutes=37 * k),
                 tags=("release",) if k % 500 == 0 else (), pinned=k % 1000 == 1,
                 kind="safety" if k % 777 == 5 else "backup", damaged=k % 301 == 3)
            for k in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = items(args.n)
    tz = ZoneInfo("Europe/Berlin")
    decide_s, sort_s = [], []
    kept = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        sorted(data, key=lambda i: (i.created_at, i.id), reverse=True)
        sort_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        kept = sum(d.keep for d in decide(data, RULES, tz))
        decide_s.append(time.perf_counter() - start)
    d, s = statistics.median(decide_s), statistics.median(sort_s)
    print(f"backups {args.n}, kept {kept}, rules {len(RULES)}, tz {tz.key}")
    print(f"decide  median {d * 1000:8.1f} ms  (max {max(decide_s) * 1000:.1f} ms)")
    print(f"sort    median {s * 1000:8.1f} ms  (baseline)")
    print(f"ratio   {d / s:.1f}x the sort; target < 1 s: {'PASS' if d < 1 else 'FAIL'}")


if __name__ == "__main__":
    main()
