"""Trees: one blob (``BlobType.TREE``) per directory, listing its entries.

A tree's plaintext is compact, deterministic JSON (``{"v":1,"nodes":[…]}``, keys sorted,
nodes sorted by the raw bytes of their names), so an unchanged directory encodes to the
same bytes and hence the same blob id on every backup — unchanged subtrees deduplicate.
Names, symlink targets, hardlink paths and xattr names are ``os.fsdecode``'d strings
(surrogateescape): JSON escapes the lone surrogates of non-UTF-8 bytes as ``\\udcXX``,
so every name round-trips byte for byte. xattr values are base64; chunk and subtree ids
are hex.

A node's fields (absent when empty/not applicable): ``name``, ``type`` (file, dir,
symlink, hardlink, fifo, char, block, socket), ``mode`` (permission bits incl.
setuid/setgid/sticky), ``uid``, ``gid``, ``mtime_ns``, ``ctime_ns`` and ``inode`` (for
the incremental check only), ``size`` (logical size), ``xattrs``, ``target`` (symlink),
``rdev`` ([major, minor]), ``content`` (chunk ids of the file's *data*), ``holes``
([[offset, length], …] ranges of a sparse file not stored at all), ``subtree`` (dir)
and ``link`` (hardlink: the snapshot path of the first occurrence, which holds the
inode's metadata; the hardlink node repeats the content so a partial restore that
misses the first path can still write it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from common.errors import IntegrityError

TREE_VERSION = 1
NODE_TYPES = frozenset({"file", "dir", "symlink", "hardlink", "fifo", "char", "block", "socket"})
_HINT = ("the snapshot's tree is damaged or hostile; check it with `volkeeper repair TARGET "
         "--read-data --dry-run`")


@dataclass
class Node:
    """One directory entry of a tree."""

    name: str
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0
    size: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    target: str | None = None
    rdev: tuple[int, int] | None = None
    content: list[bytes] = field(default_factory=list)
    holes: list[tuple[int, int]] = field(default_factory=list)
    subtree: bytes | None = None
    link: str | None = None

    @property
    def raw_name(self) -> bytes:
        """The name as the bytes the filesystem had."""
        return os.fsencode(self.name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (empty fields left out)."""
        d: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "mtime_ns": self.mtime_ns,
        }
        if self.ctime_ns:
            d["ctime_ns"] = self.ctime_ns
        if self.inode:
            d["inode"] = self.inode
        if self.size:
            d["size"] = self.size
        if self.xattrs:
            d["xattrs"] = {k: base64.b64encode(v).decode() for k, v in self.xattrs.items()}
        if self.target is not None:
            d["target"] = self.target
        if self.rdev is not None:
            d["rdev"] = list(self.rdev)
        if self.content:
            d["content"] = [c.hex() for c in self.content]
        if self.holes:
            d["holes"] = [list(h) for h in self.holes]
        if self.subtree is not None:
            d["subtree"] = self.subtree.hex()
        if self.link is not None:
            d["link"] = self.link
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Node:
        """Parse and validate one node; IntegrityError on anything malformed or hostile."""
        try:
            get = d.get
            xattrs = get("xattrs")
            rdev = get("rdev")
            content = get("content")
            holes = get("holes")
            subtree = get("subtree")
            target = get("target")
            link = get("link")
            node = cls(  # positional: noticeably cheaper than keywords, per node
                _str(d["name"]),
                _str(d["type"]),
                int(get("mode", 0)),
                int(get("uid", 0)),
                int(get("gid", 0)),
                int(get("mtime_ns", 0)),
                int(get("ctime_ns", 0)),
                int(get("inode", 0)),
                int(get("size", 0)),
                {_str(k): base64.b64decode(v, validate=True)
                 for k, v in xattrs.items()} if xattrs else {},
                None if target is None else _str(target),
                None if rdev is None else (int(rdev[0]), int(rdev[1])),
                list(map(_id, content)) if content else [],
                [(int(a), int(b)) for a, b in holes] if holes else [],
                None if subtree is None else _id(subtree),
                None if link is None else _str(link),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise IntegrityError(f"a tree node is malformed: {exc!r}", _HINT) from None
        check_name(node.name)
        if node.type not in NODE_TYPES:
            raise IntegrityError(f"tree node {node.name!r} has unknown type {node.type!r}", _HINT)
        if node.type == "dir" and node.subtree is None:
            raise IntegrityError(f"directory node {node.name!r} has no subtree", _HINT)
        if node.type == "hardlink" and node.link is None:
            raise IntegrityError(f"hardlink node {node.name!r} names no link target", _HINT)
        if node.size < 0 or (node.holes and any(a < 0 or b <= 0 for a, b in node.holes)):
            raise IntegrityError(f"tree node {node.name!r} has negative sizes", _HINT)
        return node


def content_digest(content: Iterable[bytes]) -> str:
    """A file's chunk ids as one hex digest (what a record of a compared or synced file
    keeps of its content: ``common.engine.tree_compare.Seen``)."""
    return hashlib.sha256(b"".join(content)).hexdigest()


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def _id(v: object) -> bytes:
    raw = bytes.fromhex(_str(v))
    if len(raw) != 32:
        raise ValueError("a blob id is 32 bytes")
    return raw


def check_name(name: str) -> str:
    """Refuse names that would escape the restore target or are not single components."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise IntegrityError(f"tree holds a hostile or invalid name {name!r}", _HINT)
    return name


def check_link_path(path: str) -> str:
    """A hardlink's snapshot-relative path: components checked like names."""
    for part in path.split("/"):
        check_name(part)
    return path


@dataclass
class Tree:
    """The entries of one directory, kept sorted by raw name bytes."""

    nodes: list[Node] = field(default_factory=list)

    def encode(self) -> bytes:
        """The deterministic plaintext of the tree blob."""
        return encode_nodes(map(encode_node, sorted(self.nodes, key=lambda n: n.raw_name)))

    @classmethod
    def decode(cls, data: bytes, what: str = "tree") -> Tree:
        """Parse a tree blob's plaintext; IntegrityError on damage, hostile or duplicate
        names."""
        nodes = [Node.from_dict(d) for d in _node_list(data, what)]
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise IntegrityError(f"{what} lists a name twice", _HINT)
        return cls(nodes)

    def by_name(self) -> dict[str, Node]:
        """Nodes keyed by name."""
        return {n.name: n for n in self.nodes}


def _node_list(data: bytes, what: str) -> list[Any]:
    try:
        doc = json.loads(data)
        if doc["v"] != TREE_VERSION:
            raise ValueError(f"tree format version {doc['v']} is not supported")
        raw_nodes = doc["nodes"]
        if not isinstance(raw_nodes, list):
            raise TypeError("nodes is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{what} is malformed: {exc}", _HINT) from None
    return raw_nodes


def decode_some(data: bytes, what: str, keep: Callable[[Any], bool]
                ) -> list[Node | dict[str, Any]]:
    """``Tree.decode``'s nodes (the same checks, the same errors), except that each node
    ``keep`` accepts stays its JSON object, only its name checked (``check_name``): for a
    walk that compares most nodes field by field without making a ``Node`` of them.
    ``keep`` must accept only a dict with a string ``name`` that ``Node.from_dict`` would
    parse without error (but for the name's check)."""
    nodes: list[Node | dict[str, Any]] = []
    names = []
    for d in _node_list(data, what):
        if keep(d):
            names.append(check_name(d["name"]))
            nodes.append(d)
        else:
            node = Node.from_dict(d)
            names.append(node.name)
            nodes.append(node)
    if len(set(names)) != len(names):
        raise IntegrityError(f"{what} lists a name twice", _HINT)
    return nodes


# The canonical text of a tree: ``json.dumps({"v": 1, "nodes": [...]}, sort_keys=True,
# separators=(",", ":"))``, which is this head, the nodes' texts joined by commas, this tail.
_HEAD = '{"nodes":['
_TAIL = f'],"v":{TREE_VERSION}}}'
#: json's C scanner: (text, index) -> (the value there, the index after it)
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _node_encoder() -> Callable[[dict[str, Any]], str]:
    """``json.dumps(d, sort_keys=True, separators=(",", ":"))``, without building an encoder
    per call when json's C encoder is there (a backup encodes one node per file)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"))
    c_encode = make(None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii,
                    None, ":", ",", True, False, True)
    return lambda d: "".join(c_encode(d, 0))


_encode_dict = _node_encoder()
#: a node's canonical JSON text from its JSON object (``Node.to_dict``)
encode_dict = _encode_dict


def encode_node(node: Node) -> str:
    """One node's canonical JSON text."""
    return _encode_dict(node.to_dict())


def encode_nodes(texts: Iterable[str]) -> bytes:
    """A tree's plaintext from its nodes' texts (in raw-name order)."""
    return (_HEAD + ",".join(texts) + _TAIL).encode("ascii")


def split_tree(data: bytes, what: str = "tree") -> list[tuple[dict[str, Any], str]]:
    """Each node of a tree blob as (its JSON object, its exact text), unvalidated beyond
    a string name: for a backup that compares the nodes with the filesystem and copies the
    unchanged ones into the new tree byte for byte (``Node.from_dict`` validates any node
    it uses otherwise). A tree not in canonical form is decoded and re-encoded."""
    try:
        text = data.decode("ascii")
        if not (text.startswith(_HEAD) and text.endswith(_TAIL)):
            raise ValueError("not canonical")
        out = []
        i, end = len(_HEAD), len(text) - len(_TAIL)
        while i < end:
            obj, j = _scan(text, i)
            if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                raise ValueError("a node without a name")
            if j > end:
                raise ValueError("a node runs into the end")
            out.append((obj, text[i:j]))
            if j == end:
                break
            if text[j] != "," or j + 1 == end:
                raise ValueError("nodes not separated by commas")
            i = j + 1
        return out
    except (ValueError, StopIteration, IndexError):
        dicts = [n.to_dict() for n in Tree.decode(data, what).nodes]
        return [(d, _encode_dict(d)) for d in dicts]
