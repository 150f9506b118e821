"""The tree codec: canonical text, and splitting a tree into its nodes' exact texts (which a
backup copies into the next tree for unchanged files)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import IntegrityError
from common.repository.core.tree import Node, Tree, encode_node, encode_nodes, split_tree

names = st.binary(min_size=1, max_size=12).filter(
    lambda b: b not in (b".", b"..") and b"/" not in b and b"\x00" not in b
).map(os.fsdecode)
ids = st.binary(min_size=32, max_size=32)
ints = st.integers(0, 2**63)


@st.composite
def nodes(draw: st.DrawFn) -> Node:
    kind = draw(st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo", "char"]))
    node = Node(name=draw(names), type=kind, mode=draw(st.integers(0, 0o7777)),
                uid=draw(ints), gid=draw(ints), mtime_ns=draw(ints), ctime_ns=draw(ints),
                inode=draw(ints), size=draw(ints),
                xattrs=draw(st.dictionaries(names, st.binary(max_size=8), max_size=2)))
    if kind in ("file", "hardlink"):
        node.content = draw(st.lists(ids, max_size=3))
        node.holes = draw(st.lists(st.tuples(ints, st.integers(1, 2**40)), max_size=2))
    if kind == "dir":
        node.subtree = draw(ids)
    if kind == "symlink":
        node.target = draw(names)
    if kind == "hardlink":
        node.link = draw(names)
    if kind == "char":
        node.rdev = (draw(st.integers(0, 4095)), draw(st.integers(0, 2**20)))
    return node


trees = st.lists(nodes(), max_size=8, unique_by=lambda n: n.name).map(Tree)


@settings(max_examples=150, deadline=None)
@given(tree=trees)
def test_a_tree_is_canonical_json_and_splits_into_its_nodes_exact_texts(tree: Tree) -> None:
    data = tree.encode()
    ordered = sorted(tree.nodes, key=lambda n: n.raw_name)
    doc = {"v": 1, "nodes": [n.to_dict() for n in ordered]}
    assert data == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")
    parts = split_tree(data)
    assert [t for _d, t in parts] == [encode_node(n) for n in ordered]
    assert encode_nodes(t for _d, t in parts) == data
    assert [Node.from_dict(d) for d, _t in parts] == ordered == Tree.decode(data).nodes


@settings(max_examples=50, deadline=None)
@given(tree=trees)
def test_a_tree_not_in_canonical_form_splits_into_canonical_node_texts(tree: Tree) -> None:
    doc = json.loads(tree.encode())
    loose = json.dumps(doc, indent=2).encode()  # what another encoder might have written
    parts = split_tree(loose)
    assert encode_nodes(t for _d, t in parts) == tree.encode()


@pytest.mark.parametrize("data", [
    b'{"nodes":[{"name":"a","type":"fifo"},],"v":1}',  # trailing comma
    b'{"nodes":[{"name":"a","type":"fifo"}{"name":"b","type":"fifo"}],"v":1}',
    b'{"nodes":[{"name":"a","type":"fifo"}',  # truncated
    b'{"nodes":[["a"]],"v":1}',
    b'{"nodes":[{"type":"fifo"}],"v":1}',  # no name
    b'{"nodes":[{"name":"a","type":"fifo"}],"v":2}',
    b'{"nodes":[{"name":"a","type":"fifo","x":"],\\"v\\":1}',
    b'\xff{"nodes":[],"v":1}',
])
def test_a_damaged_tree_is_refused_when_split(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        split_tree(data, "tree x")


def test_an_empty_tree_splits_into_no_nodes() -> None:
    assert split_tree(Tree([]).encode()) == []
