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

``generate_small(root, files, seed)`` writes ``files`` small files instead (the "many
small files" volume of the repository benchmark): sizes log-uniform between 1 and 16 KiB
(mean ~5.4 KiB), 100 files per leaf directory, 100 leaf directories per top directory;
about half of the files are row text (compressible ~3:1), the other half random bytes.

``mutate(root, fraction, seed)`` changes ``fraction`` of a tree's data bytes in place
(whole small files rewritten, 1 MiB regions of large files overwritten) and returns what it
changed so ``revert`` can put the original bytes back.

The same seed and size give byte-identical trees. A ``.vkbench-done`` marker file holds the
parameters, so ``ensure`` reuses an existing tree instead of writing it again.
"""

from __future__ import annotations

import json
import math
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
        info.root = str(root)  # the tree may have been moved since
        if info.requested_bytes == total_bytes and info.seed == seed:
            return info
    return generate(root, total_bytes, seed)


def generate_small(root: str | Path, files: int = 200_000, seed: int = 42) -> DatasetInfo:
    """Write ``files`` small files (1-16 KiB, log-uniform) into ``root`` (emptied first)."""
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    g = _Gen(root, seed)
    rng = g.rng
    lo, hi = math.log(1024), math.log(16 * 1024)
    for n in range(files):
        d = root / f"t{n // 10000:03d}" / f"l{(n // 100) % 100:02d}"
        if n % 100 == 0:
            g.mkdir(d)
        size = int(math.exp(rng.uniform(lo, hi)))
        if n % 2:
            off = rng.randrange(0, len(g.corpus) - size)
            content = g.corpus[off : off + size]
        else:
            content = rng.randbytes(size)
        g.write(d / f"f{n:07d}", content)
    info = DatasetInfo(str(root), seed, files, g.files, g.dirs, g.data, g.apparent,
                       {"small": g.data})
    (root / MARKER).write_text(json.dumps(asdict(info)))
    return info


def ensure_small(root: str | Path, files: int = 200_000, seed: int = 42) -> DatasetInfo:
    """Reuse the small-files tree at ``root`` if it has these parameters, else generate."""
    marker = Path(root) / MARKER
    if marker.exists():
        info = DatasetInfo(**json.loads(marker.read_text()))
        info.root = str(root)
        if info.requested_bytes == files and info.seed == seed and info.kinds.keys() == {
                "small"}:
            return info
    return generate_small(root, files, seed)


REGION = MiB


def mutate(root: str | Path, save_dir: str | Path, fraction: float = 0.05,
           seed: int = 7) -> int:
    """Change ``fraction`` of the data bytes of the tree at ``root`` in place; the original
    bytes go to ``save_dir`` (with a ``plan.json``) for ``revert``. Returns bytes changed.
    Files under 1 MiB are rewritten whole (same size, new random content), larger ones get
    1 MiB regions overwritten; sparse files and symlinks are left alone."""
    root, save = Path(root), Path(save_dir)
    if save.exists():
        raise RuntimeError(f"{save} exists: revert the earlier mutation first")
    files = []
    for dirpath, _dirs, names in os.walk(root):
        for name in sorted(names):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if name == MARKER or not stat_isreg(st.st_mode) or st.st_blocks * 512 < st.st_size:
                continue
            files.append((os.path.relpath(p, root), st.st_size))
    files.sort()
    total = sum(s for _, s in files)
    rng = random.Random(seed)
    rng.shuffle(files)
    budget = int(total * fraction)
    plan: list[tuple[str, int, int]] = []  # (relative path, offset, length)
    for rel, size in files:
        if budget <= 0:
            break
        if size < MiB:
            plan.append((rel, 0, size))
            budget -= size
        else:
            n = min(max(1, budget // REGION), 4, size // REGION)
            for off in sorted(rng.sample(range(size // REGION), n)):
                plan.append((rel, off * REGION, REGION))
                budget -= REGION
    save.mkdir(parents=True)
    changed = 0
    with open(save / "originals", "wb") as orig:
        for rel, off, length in plan:
            with open(root / rel, "r+b") as f:
                f.seek(off)
                orig.write(f.read(length))
                f.seek(off)
                f.write(rng.randbytes(length))
            changed += length
    (save / "plan.json").write_text(json.dumps(plan))
    return changed


def revert(root: str | Path, save_dir: str | Path) -> None:
    """Undo ``mutate``: write the saved original bytes back and remove ``save_dir``."""
    root, save = Path(root), Path(save_dir)
    if not (save / "plan.json").exists():
        if save.exists():
            shutil.rmtree(save)
        return
    plan = json.loads((save / "plan.json").read_text())
    with open(save / "originals", "rb") as orig:
        for rel, off, length in plan:
            with open(root / rel, "r+b") as f:
                f.seek(off)
                f.write(orig.read(length))
    shutil.rmtree(save)


def stat_isreg(mode: int) -> bool:
    """Whether ``mode`` is a regular file's."""
    return (mode & 0o170000) == 0o100000


def parse_size(text: str) -> int:
    """``512M``, ``1G``, ``4G`` or a number of bytes."""
    units = {"K": 1 << 10, "M": MiB, "G": GiB}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/vkbench/data-1G"
    if len(sys.argv) > 2 and sys.argv[2].startswith("files="):
        print(ensure_small(target, int(sys.argv[2].split("=", 1)[1])).describe())
    else:
        size = parse_size(sys.argv[2]) if len(sys.argv) > 2 else GiB
        print(generate(target, size).describe())
