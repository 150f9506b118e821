"""A deterministic, mixed "volume" for the archive benchmark.

``generate(root, total_bytes, seed)`` fills ``root`` with about ``total_bytes`` of data in
five kinds, chosen to look like what Docker volumes hold:

- ``random/``  incompressible files (media, already-compressed data), 30 %;
- ``db/``      database-like files of 8 KiB pages (a page header, a run of random bytes,
  then row text from a small vocabulary), zstd -3 makes about 3:1 of them, 30 %;
- ``logs/``    text log lines, very compressible, 15 %;
- ``small/``   tens of thousands of 1-16 KiB files in nested directories, 20 %;
- ``sparse/``  a few large files that are mostly holes, 5 % of data (their apparent size
  is 4x that).

The same seed and size give byte-identical trees. A ``.vkbench-done`` marker file holds the
parameters, so ``ensure`` reuses an existing tree instead of writing it again.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
PAGE = 8192
MARKER = ".vkbench-done"

_WORDS_TEXT = (
    "select insert update delete customer order invoice amount status pending shipped paid "
    "refund alpha beta gamma delta epsilon name address city country street postcode email "
    "phone created updated deleted version tenant account balance currency eur usd gbp "
    "product quantity price discount total warehouse region north south east west"
)
_LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
_PATHS = ["/api/v1/orders", "/api/v1/customers", "/healthz", "/api/v1/invoices/search",
          "/static/app.js", "/api/v2/stock", "/login", "/metrics"]


@dataclass
class DatasetInfo:
    """What a generated tree holds."""

    root: str
    seed: int
    requested_bytes: int
    files: int
    dirs: int
    data_bytes: int
    apparent_bytes: int
    kinds: dict[str, int]

    def describe(self) -> str:
        """One human-readable line."""
        kinds = ", ".join(f"{k} {v / MiB:.0f} MiB" for k, v in self.kinds.items())
        return (f"{self.files} files in {self.dirs} dirs, {self.data_bytes / MiB:.0f} MiB data "
                f"({self.apparent_bytes / MiB:.0f} MiB apparent): {kinds}")


class _Gen:
    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.files = 0
        self.dirs = 0
        self.data = 0
        self.apparent = 0
        words = [w.encode() for w in _WORDS_TEXT.split()]
        # 1 MiB of row text that db pages and small files take slices from.
        parts: list[bytes] = []
        size = 0
        while size < MiB:
            w = self.rng.choice(words)
            parts.append(w)
            size += len(w) + 1
        self.corpus = b" ".join(parts)

    def rand(self, n: int) -> bytes:
        if n <= 0:
            return b""
        out = bytearray()
        while len(out) < n:
            out += self.rng.randbytes(min(MiB, n - len(out)))
        return bytes(out)

    def mkdir(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self.dirs += 1
        return path

    def write(self, path: Path, chunks: list[bytes] | bytes) -> None:
        with open(path, "wb") as f:
            if isinstance(chunks, bytes):
                f.write(chunks)
                n = len(chunks)
            else:
                n = 0
                for c in chunks:
                    f.write(c)
                    n += len(c)
        self.files += 1
        self.data += n
        self.apparent += n

    # --- kinds ---------------------------------------------------------------------------
    def random_files(self, budget: int) -> None:
        d = self.mkdir(self.root / "random")
        i = 0
        while budget > 0:
            size = min(budget, self.rng.randint(4 * MiB, 64 * MiB))
            with open(d / f"blob-{i:04d}.bin", "wb") as f:
                left = size
                while left:
                    take = min(MiB, left)
                    f.write(self.rng.randbytes(take))
                    left -= take
            self.files += 1
            self.data += size
            self.apparent += size
            budget -= size
            i += 1

    def _page(self, pageno: int) -> bytes:
        rnd = self.rng.randbytes(1536)
        text_len = PAGE - 16 - len(rnd)
        off = self.rng.randrange(0, len(self.corpus) - text_len)
        header = pageno.to_bytes(8, "little") + b"PGv1\x00\x00\x20\x00"
        return header + rnd + self.corpus[off : off + text_len]

    def db_files(self, budget: int) -> None:
        d = self.mkdir(self.root / "db" / "base" / "16384")
        i = 0
        while budget > 0:
            size = min(budget, 128 * MiB)
            pages = max(1, size // PAGE)
            with open(d / f"{16384 + i}", "wb") as f:
                batch: list[bytes] = []
                for p in range(pages):
                    batch.append(self._page(p))
                    if len(batch) == 128:
                        f.write(b"".join(batch))
                        batch.clear()
                f.write(b"".join(batch))
            self.files += 1
            self.data += pages * PAGE
            self.apparent += pages * PAGE
            budget -= pages * PAGE
            i += 1

    def logs_files(self, budget: int) -> None:
        d = self.mkdir(self.root / "logs")
        rng = self.rng
        i = 0
        ts = 1_700_000_000_000
        while budget > 0:
            size = min(budget, 32 * MiB)
            with open(d / f"app-{i:03d}.log", "wb") as f:
                written = 0
                while written < size:
                    lines = []
                    for _ in range(2000):
                        ts += rng.randint(1, 900)
                        lines.append(
                            f"{ts // 1000}.{ts % 1000:03d} {rng.choice(_LEVELS)} "
                            f"[worker-{rng.randint(1, 16)}] req={rng.getrandbits(48):012x} "
                            f"{rng.choice(_PATHS)} status={rng.choice((200, 200, 201, 404, 500))}"
                            f" took={rng.randint(1, 900)}ms user={rng.randint(1, 50000)}\n")
                    block = "".join(lines).encode()[: size - written]
                    f.write(block)
                    written += len(block)
            self.files += 1
            self.data += size
            self.apparent += size
            budget -= size
            i += 1

    def small_files(self, budget: int) -> None:
        base = self.mkdir(self.root / "small")
        n = 0
        while budget > 0:
            d = base / f"d{n // 2000:03d}" / f"s{(n // 100) % 20:02d}"
            if n % 100 == 0:
                self.mkdir(d)
            size = min(budget, self.rng.randint(1024, 16 * 1024))
            # half text (compressible), half random
            if n % 2:
                off = self.rng.randrange(0, len(self.corpus) - size)
                content = self.corpus[off : off + size]
            else:
                content = self.rng.randbytes(size)
            self.write(d / f"f{n:06d}.dat", content)
            if n % 1000 == 0:
                os.symlink(f"f{n:06d}.dat", d / f"link{n:06d}")
            budget -= size
            n += 1

    def sparse_files(self, budget: int) -> None:
        d = self.mkdir(self.root / "sparse")
        count = 4
        per = max(MiB, budget // count)
        for i in range(count):
            apparent = per * 4
            with open(d / f"disk-{i}.img", "wb") as f:
                f.truncate(apparent)
                extents = 8
                ext = per // extents
                for e in range(extents):
                    f.seek(e * (apparent // extents))
                    f.write(self.rand(ext // 2) + self.corpus[: ext - ext // 2])
            self.files += 1
            self.data += ext * extents
            self.apparent += apparent


def generate(root: str | Path, total_bytes: int = GiB, seed: int = 42) -> DatasetInfo:
    """Write the mixed dataset into ``root`` (emptied first)."""
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    g = _Gen(root, seed)
    shares = {"random": 0.30, "db": 0.30, "logs": 0.15, "small": 0.20, "sparse": 0.05}
    kinds: dict[str, int] = {}
    for kind, share in shares.items():
        before = g.data
        getattr(g, f"{kind}_files")(int(total_bytes * share))
        kinds[kind] = g.data - before
    info = DatasetInfo(str(root), seed, total_bytes, g.files, g.dirs, g.data, g.apparent, kinds)
    (root / MARKER).write_text(json.dumps(asdict(info)))
    return info


def ensure(root: str | Path, total_bytes: int = GiB, seed: int = 42) -> DatasetInfo:
    """Reuse the tree at ``root`` if it was generated with these parameters, else generate."""
    marker = Path(root) / MARKER
    if marker.exists():
        info = DatasetInfo(**json.loads(marker.read_text()))
        if info.requested_bytes == total_bytes and info.seed == seed:
            return info
    return generate(root, total_bytes, seed)


def parse_size(text: str) -> int:
    """``512M``, ``1G``, ``4G`` or a number of bytes."""
    units = {"K": 1 << 10, "M": MiB, "G": GiB}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/vkbench/data-1G"
    size = parse_size(sys.argv[2]) if len(sys.argv) > 2 else GiB
    print(generate(target, size).describe())
