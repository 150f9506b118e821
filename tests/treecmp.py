"""Compare two directory trees the way a restore must reproduce them.

``compare_trees(src, dst)`` returns a list of human-readable differences (empty when the
trees match): names, file types, bytes, permission bits, numeric owners, mtimes,
symlink targets, hardlink groups, sparseness and extended attributes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import defaultdict
from pathlib import Path


def _walk(root: str) -> dict[str, os.stat_result]:
    out: dict[str, os.stat_result] = {".": os.lstat(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out["./" + os.path.relpath(full, root)] = os.lstat(full)
    return out


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _xattrs(path: str, prefixes: tuple[str, ...]) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False)
            for n in names if n.startswith(prefixes)}


def is_sparse(st: os.stat_result) -> bool:
    """True when a file has (much) fewer allocated bytes than its size."""
    return stat.S_ISREG(st.st_mode) and st.st_size > 65536 and st.st_blocks * 512 < st.st_size // 2


def compare_trees(
    src: str | Path,
    dst: str | Path,
    *,
    mtime_tolerance_ns: int = 1000,
    check_root: bool = True,
    check_dir_mtimes: bool = True,
    check_symlink_mtimes: bool = False,
    xattr_prefixes: tuple[str, ...] = ("user.",),
) -> list[str]:
    """Differences between the tree at ``src`` and the restored tree at ``dst``."""
    a, b = _walk(os.fspath(src)), _walk(os.fspath(dst))
    diffs: list[str] = []
    for path in sorted(a.keys() - b.keys()):
        diffs.append(f"{path!r}: missing from the restored tree")
    for path in sorted(b.keys() - a.keys()):
        diffs.append(f"{path!r}: unexpected in the restored tree")
    a_groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for path in sorted(a.keys() & b.keys()):
        if path == "." and not check_root:
            continue
        sa, sb = a[path], b[path]
        pa, pb = os.path.join(src, path), os.path.join(dst, path)
        where = repr(path)
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            diffs.append(f"{where}: type {stat.filemode(sa.st_mode)} became "
                         f"{stat.filemode(sb.st_mode)}")
            continue
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode) and not stat.S_ISLNK(sa.st_mode):
            diffs.append(f"{where}: mode {oct(stat.S_IMODE(sa.st_mode))} became "
                         f"{oct(stat.S_IMODE(sb.st_mode))}")
        if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            diffs.append(f"{where}: owner {sa.st_uid}:{sa.st_gid} became {sb.st_uid}:{sb.st_gid}")
        check_mtime = (
            (stat.S_ISDIR(sa.st_mode) and check_dir_mtimes)
            or (stat.S_ISLNK(sa.st_mode) and check_symlink_mtimes)
            or not (stat.S_ISDIR(sa.st_mode) or stat.S_ISLNK(sa.st_mode))
        )
        if check_mtime and abs(sa.st_mtime_ns - sb.st_mtime_ns) > mtime_tolerance_ns:
            diffs.append(f"{where}: mtime {sa.st_mtime_ns} became {sb.st_mtime_ns}")
        if stat.S_ISLNK(sa.st_mode):
            if os.readlink(pa) != os.readlink(pb):
                diffs.append(f"{where}: symlink target {os.readlink(pa)!r} became "
                             f"{os.readlink(pb)!r}")
        elif stat.S_ISREG(sa.st_mode):
            if sa.st_size != sb.st_size:
                diffs.append(f"{where}: size {sa.st_size} became {sb.st_size}")
            elif _digest(pa) != _digest(pb):
                diffs.append(f"{where}: content differs")
            if is_sparse(sa) and not is_sparse(sb):
                diffs.append(f"{where}: sparse file was restored dense "
                             f"({sb.st_blocks * 512} bytes allocated of {sb.st_size})")
            if sa.st_nlink > 1:
                a_groups[(sa.st_dev, sa.st_ino)].append(path)
        elif (stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode)) and sa.st_rdev != sb.st_rdev:
            diffs.append(f"{where}: device {sa.st_rdev} became {sb.st_rdev}")
        xa, xb = _xattrs(pa, xattr_prefixes), _xattrs(pb, xattr_prefixes)
        if xa != xb:
            diffs.append(f"{where}: xattrs {xa!r} became {xb!r}")
    for group in a_groups.values():
        inodes = {(b[p].st_dev, b[p].st_ino) for p in group if p in b}
        if len(inodes) > 1:
            diffs.append(f"hardlinks {group!r} are no longer one file")
    return diffs


ODD_NAMES = ["uni-ß-日本語.txt", "with space", "new\nline", "-leading-dash", "tab\there", "q'\"x"]
SPARSE_SIZE = 64 << 20


def build_fidelity_tree(root: Path) -> dict[str, bool]:
    """Fill ``root`` with every fidelity item; returns which optional items were made."""
    made = {"xattrs": True, "device": True}
    root.mkdir(parents=True, exist_ok=True)
    (root / "plain.txt").write_bytes(b"hello volkeeper\n" * 100)
    os.chown(root / "plain.txt", 1234, 5678)
    os.chmod(root / "plain.txt", 0o640)
    (root / "big.bin").write_bytes(os.urandom(3 << 20) + b"tail")
    (root / "setuid").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "setuid", 0o4755)
    (root / "setgid").write_bytes(b"")
    os.chmod(root / "setgid", 0o2711)
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    (root / "empty-dir").mkdir()
    (root / "locked").mkdir()
    (root / "locked" / "inside").write_text("x")
    os.chmod(root / "locked", 0o500)
    deep = root / ("d" * 60) / ("e" * 60) / ("f" * 60)
    deep.mkdir(parents=True)
    (deep / ("long-name-" + "n" * 180)).write_text("deep")
    os.symlink("plain.txt", root / "link-to-plain")
    os.symlink("nowhere/at/all", root / "dangling")
    os.lchown(root / "dangling", 42, 43)
    os.link(root / "plain.txt", root / "sticky" / "hardlink")
    with open(root / "sparse.img", "wb") as f:
        f.truncate(SPARSE_SIZE)
        f.seek(1 << 20)
        f.write(b"island one" * 100)
        f.seek(40 << 20)
        f.write(os.urandom(5000))
    for name in ODD_NAMES:
        (root / name).write_text(name)
    os.mkfifo(root / "fifo")
    try:
        os.mknod(root / "null-dev", 0o600 | 0o020000, os.makedev(1, 3))
    except OSError:
        made["device"] = False
    try:
        os.setxattr(root / "plain.txt", "user.comment", b"bin\x00ary\xff")
        os.setxattr(root / "empty-dir", "user.empty", b"")
        os.setxattr(root / "sticky", "user.dir", "ünïcode".encode())
    except OSError:
        made["xattrs"] = False
    # mtimes last, deepest first, with sub-second parts
    stamp = 1_600_000_000_123_456_789
    paths = sorted((p for p in root.rglob("*")), key=lambda p: -len(p.parts))
    for i, p in enumerate([*paths, root]):
        os.utime(p, ns=(stamp, stamp + i * 1_000_001_003), follow_symlinks=False)
    return made
