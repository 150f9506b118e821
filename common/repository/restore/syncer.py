"""The walk of a sync restore (``sync``): the snapshot's trees and the destination side by
side, one directory at a time; what to do with each entry (keep, fix its metadata,
rebuild, replace, delete), the renames of rebuilt entries once their batch is written,
hardlinks, and directory metadata last. The restorer's batches write the data
(``restorer._Restorer`` is the base: its batching, large files in parts, runners).
"""

from __future__ import annotations

import base64
import json
import os
import stat
from typing import Any

from common.errors import IntegrityError
from common.repository.core.tree import TREE_VERSION, Node, check_link_path, check_name
from common.repository.restore.batch import NODE, SYMLINK, FileRecord, Meta
from common.repository.restore.plan import meta_of
from common.repository.restore.sync_base import held_names, hex_id
from common.repository.restore.sync_files import FileSyncer, SyncStats, join
from common.repository.restore.sync_fs import fix_at, fix_fd, same_meta, xattrs_in
from common.repository.restore.trees import refused

__all__ = ["SyncStats", "Syncer"]
_IFMT = {"fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK, "char": stat.S_IFCHR,
         "block": stat.S_IFBLK}


def raw_nodes(plain: bytes, tree_id: bytes) -> list[dict[str, Any]]:
    """A tree's nodes as JSON objects, each name checked (``check_name``) and unique; the
    other fields are validated when a ``Node`` is made of them."""
    try:
        doc = json.loads(plain)
        if doc["v"] != TREE_VERSION or not isinstance(doc["nodes"], list):
            raise ValueError("not a version 1 tree")
        nodes: list[dict[str, Any]] = doc["nodes"]
        names = [d["name"] for d in nodes]
        if not all(isinstance(n, str) for n in names):
            raise TypeError("a name is not a string")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"tree {tree_id.hex()} is malformed: {exc}",
                             "check it with `volkeeper repair TARGET --read-data "
                             "--dry-run`") from None
    for n in names:
        check_name(n)
    if len(set(names)) != len(names):
        raise IntegrityError(f"tree {tree_id.hex()} lists a name twice",
                             "check it with `volkeeper repair TARGET --read-data --dry-run`")
    return nodes


class Syncer(FileSyncer):
    """Syncs one snapshot into ``dest`` (see ``sync``): the walk, hardlinks, directories."""

    # --- the walk --------------------------------------------------------------------
    def sync_tree(self, tree_id: bytes, rel: str, held: bytes | None = None) -> None:
        """Sync the directory ``rel`` to the tree ``tree_id``; ``held``: the base's tree
        here, when the destination is trusted to hold the base (``sync_base``): a file or
        directory whose node is the base's is kept as it is (not even its stat read), a
        directory whose subtree is the base's is not entered."""
        plain = self.trees.plain(tree_id)
        nodes = raw_nodes(plain, tree_id)
        same: set[str] = set()
        had = None  # the base's nodes by name, for the directories entered
        base = None if held is None or self.base is None else self.base.plain(held)
        if base is not None and self.base is not None:
            same = held_names(plain, base, nodes)
            if any(d.get("type") == "dir" and d["name"] not in same for d in nodes):
                had = self.base.seed(rel, base)
        fd = self.fds.dir(rel)
        have = {name: None if name in same else os.stat(name, dir_fd=fd,
                                                         follow_symlinks=False)
                for name in os.listdir(fd)}
        if self.delete:
            wanted = {d["name"] for d in nodes}
            for name in sorted(have.keys() - wanted):
                self.remove(self.fds.dir(rel), name, join(rel, name))
        held_bytes = held_files = 0
        for d in nodes:
            name = d["name"]
            if name in same and name in have:  # the base's: kept as it is
                if d.get("type") == "dir":
                    self.dir_set.add(join(rel, name))
                    self.skipped.add(join(rel, name))
                    self.stats.subtrees_skipped += 1
                else:
                    size = d.get("size", 0)
                    held_bytes += size if isinstance(size, int) else 0
                    held_files += 1
                continue
            st = have.get(name)
            if st is not None and d.get("type") == "file" and self.same_file(d, st, rel, name):
                continue
            self.entry(join(rel, name), Node.from_dict(d), st,
                       None if had is None else had.get(name))
        if held_files:
            self.stats.files += held_files
            self.stats.unchanged += held_files
            self.stats.files_held += held_files
            self.progress.add(held_bytes, held_files)

    def same_file(self, d: dict[str, Any], st: os.stat_result, rel: str, name: str) -> bool:
        """Whether the regular file ``name`` is what the (not yet decoded) node ``d`` says,
        by size, mtime, mode, owner and xattrs: most files of a sync, so no ``Node`` is
        made for them (a malformed field just fails the comparison: ``Node.from_dict``
        then validates it)."""
        if (self.verify_content or not stat.S_ISREG(st.st_mode) or st.st_nlink > 1
                or st.st_size != d.get("size", 0) or st.st_mtime_ns != d.get("mtime_ns", 0)
                or stat.S_IMODE(st.st_mode) != d.get("mode", 0)
                or st.st_uid != d.get("uid", 0) or st.st_gid != d.get("gid", 0)):
            return False
        want = d.get("xattrs") or {}
        have = xattrs_in(self.fds.dir(rel), name)
        try:
            if (have or want) and have != {k: base64.b64decode(v, validate=True)
                                           for k, v in want.items()}:
                return False
        except (AttributeError, TypeError, ValueError):
            return False
        self.stats.files += 1
        self.stats.unchanged += 1
        self.progress.add(st.st_size, 1)
        return True

    def entry(self, rel: str, node: Node, st: os.stat_result | None,
              had: dict[str, Any] | None = None) -> None:
        """Sync one entry of the snapshot; ``had``: the trusted base's node here."""
        t = node.type
        if t == "dir":
            self.sync_dir(rel, node, st, had)
        elif t == "hardlink":
            self.links.append((rel, node))
            self.stats.files += 1
        elif t == "file":
            self.stats.files += 1
            self.sync_file(rel, node, st)
        elif t == "symlink":
            target = node.target or ""
            parent, name = self.fds.parent(rel)
            if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(
                    name, dir_fd=parent) == target:
                self.kept(fix_at(parent, name, rel, st, meta_of(node), self.stats.warnings))
            else:
                self.replace(rel, st, (SYMLINK, rel, meta_of(node, target), 0, False, []))
        else:
            if t in ("char", "block") and not self.devices:
                raise refused(rel, node)
            if st is not None and stat.S_IFMT(st.st_mode) == _IFMT.get(t) and (
                    t not in ("char", "block")
                    or (os.major(st.st_rdev), os.minor(st.st_rdev)) == (node.rdev or (0, 0))):
                parent, name = self.fds.parent(rel)
                self.kept(fix_at(parent, name, rel, st, meta_of(node), self.stats.warnings))
            else:
                self.replace(rel, st, (NODE, rel, meta_of(node, (t, node.rdev)), 0, False, []))

    def sync_dir(self, rel: str, node: Node, st: os.stat_result | None,
                 had: dict[str, Any] | None = None) -> None:
        parent, name = self.fds.parent(rel)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self.remove(parent, name, rel)
            st = None
        if st is None:
            os.mkdir(name, 0o700, dir_fd=parent)
            self.stats.entries_written += 1
            state = "created"
        else:  # (for the counts: its metadata is applied last in any case)
            was = _meta(had) if had is not None and had.get("type") == "dir" else None
            same = (meta_of(node) == was if was is not None  # trusted to be the base's
                    else same_meta(st, meta_of(node), xattrs_in(parent, name)))
            state = "same" if same else "fixed"
        self.stats.dirs += 1
        self.sync_dirs.append((rel, node, state))
        self.dir_set.add(rel)
        held = None
        if state != "created" and had is not None and had.get("type") == "dir":
            held = hex_id(had.get("subtree"))
        if node.subtree is not None:
            if held == node.subtree:  # only its own metadata differs from the base's
                self.skipped.add(rel)
                self.stats.subtrees_skipped += 1
                return
            self.sync_tree(node.subtree, rel, held)

    def replace(self, rel: str, st: os.stat_result | None, record: FileRecord) -> None:
        """Create a symlink or special file; an existing entry is replaced."""
        if st is not None and stat.S_ISDIR(st.st_mode):
            parent, name = self.fds.parent(rel)
            self.remove(parent, name, rel)
            st = None
        if st is not None:
            record = (record[0], self.temp(rel), *record[2:])
        self.stats.entries_written += 1
        self.add(record)

    # --- hardlinks and directories -----------------------------------------------------
    def sync_links(self) -> None:
        """Each hardlink made a link of its first path (when that is a regular file of
        the snapshot's directories), else synced as a file with its own content."""
        self.drain()
        own: set[str] = set()
        for rel, node in self.links:
            if node.link not in own and self.regular(node.link or "") is None:
                own.add(rel)
                self.sync_file(rel, node, self.lstat(rel))
        self.drain()
        for rel, node in self.links:
            if rel in own:
                continue
            target = node.link or ""
            have, first = self.lstat(rel), self.regular(target)
            if first is None:  # its first path is a link written with its own content
                self.stats.warnings.append(f"{rel}: not linked: {target} is not a file")
                continue
            if have is not None and (have.st_dev, have.st_ino) == (first.st_dev, first.st_ino):
                self.stats.unchanged += 1
                self.progress.add(0, 1)
                continue
            self.link(rel, target, have)
            self.stats.entries_written += 1
            self.progress.add(0, 1)

    def link(self, rel: str, target: str, have: os.stat_result | None) -> None:
        """Make ``rel`` a hardlink of ``target`` (an existing ``rel`` is replaced)."""
        parent, name = self.fds.parent(rel)
        if have is not None and stat.S_ISDIR(have.st_mode):
            self.remove(parent, name, rel)
            have = None
        tmp = name
        if have is not None:
            tmp = self.temp(rel).rpartition("/")[2]
            del self.temp_final[join(rel.rpartition("/")[0], tmp)]
        src_dir, src = self.fds.parent(target)
        src_dir = os.dup(src_dir)  # the next lookup may close the cached one
        try:
            dst_dir, dst = self.fds.parent(rel)
            os.link(src, tmp, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
            if tmp != dst:
                os.rename(tmp, dst, src_dir_fd=dst_dir, dst_dir_fd=dst_dir)
        finally:
            os.close(src_dir)

    def lstat(self, rel: str) -> os.stat_result | None:
        parent, name = self.fds.parent(rel)
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def regular(self, target: str) -> os.stat_result | None:
        """The destination's ``target`` when it is a regular file in a snapshot directory."""
        try:
            check_link_path(target)
        except IntegrityError:
            return None
        if not self.in_dirs(os.path.dirname(target)):
            return None
        st = self.lstat(target)
        return st if st is not None and stat.S_ISREG(st.st_mode) else None

    def in_dirs(self, rel: str) -> bool:
        """Whether ``rel`` is a directory of the snapshot this sync walked or skipped."""
        if rel in self.dir_set:
            return True
        while rel and self.skipped:
            rel = rel.rpartition("/")[0]
            if rel in self.skipped:
                return True
        return False

    def finish_dirs(self, root: Node) -> None:
        for rel, node, state in reversed(self.sync_dirs):
            fix_fd(self.fds.dir(rel), rel, meta_of(node), self.stats.warnings)
            if state != "created":
                self.kept(state == "fixed")
        self.kept(fix_fd(self.fds.root, ".", meta_of(root), self.stats.warnings))


def _meta(d: dict[str, Any]) -> Meta | None:
    """The metadata of a base's node (None: malformed)."""
    try:
        return meta_of(Node.from_dict(d))
    except (KeyError, TypeError, ValueError, IntegrityError):
        return None
