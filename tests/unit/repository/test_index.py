"""Index files and the in-memory index: round trips, lookups, merges, damage."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import IntegrityError
from common.repository import ids
from common.repository.core.crypto import AesGcmCipher, Key, NullCipher
from common.repository.core.ids import BlobType
from common.repository.core.index import (
    ENTRY,
    Index,
    IndexEntry,
    IndexFile,
    decode_index,
    encode_index,
    load_index_file,
    pack_entry,
)

CIPHER = AesGcmCipher(Key.new().enc_key)

entries_st = st.lists(
    st.builds(
        IndexEntry,
        blob_id=st.binary(min_size=32, max_size=32),
        blob_type=st.sampled_from(BlobType),
        pack_id=st.sampled_from([b"\x01" * 32, b"\x02" * 32, os.urandom(32)]),
        offset=st.integers(0, 2**32 - 1),
        length=st.integers(0, 2**32 - 1),
        raw_length=st.integers(0, 2**32 - 1),
        compression=st.integers(0, 1),
    ),
    max_size=60,
    unique_by=lambda e: e.blob_id,
)


def _sorted(entries: Iterable[IndexEntry]) -> list[IndexEntry]:
    return sorted(entries, key=lambda e: e.blob_id)


@settings(max_examples=60, deadline=None)
@given(entries=entries_st, supersedes=st.lists(st.binary(min_size=32, max_size=32), max_size=3))
def test_index_files_round_trip(entries, supersedes) -> None:
    for cipher in (CIPHER, NullCipher()):
        data = encode_index(cipher, b"i" * 32, IndexFile(entries, supersedes))
        decoded = decode_index(cipher, b"i" * 32, data)
        assert _sorted(decoded.entries) == _sorted(entries)
        assert decoded.supersedes == supersedes


def test_an_index_file_under_another_id_or_damaged_names_the_file() -> None:
    entry = IndexEntry(os.urandom(32), BlobType.DATA, os.urandom(32), 0, 10, 10)
    data = encode_index(CIPHER, b"a" * 32, IndexFile([entry]))
    with pytest.raises(IntegrityError, match=("62" * 32)):
        decode_index(CIPHER, b"b" * 32, data)
    damaged = bytearray(data)
    damaged[-3] ^= 1
    with pytest.raises(IntegrityError, match="index file"):
        decode_index(CIPHER, b"a" * 32, bytes(damaged))


@settings(max_examples=40, deadline=None)
@given(entries=entries_st, flush_every=st.integers(1, 8))
def test_the_in_memory_index_finds_every_entry_and_nothing_else(entries, flush_every) -> None:
    index = Index(flush_every=flush_every)
    assert index.add_all(entries) == len(entries)
    assert len(index) == len(entries)
    for e in entries:
        assert e.blob_id in index
        assert index.lookup(e.blob_id) == e
    assert index.lookup(b"\xff" * 31 + b"\xfe") is None or any(
        e.blob_id == b"\xff" * 31 + b"\xfe" for e in entries
    )
    assert _sorted(index) == _sorted(entries)
    absent = {bytes([i]) * 32 for i in range(3)} - {e.blob_id for e in entries}
    assert index.missing([e.blob_id for e in entries] + sorted(absent)) == absent


def test_ids_sharing_their_first_eight_bytes_are_told_apart() -> None:
    head = b"\x00" * 8
    a = IndexEntry(head + b"a" * 24, BlobType.DATA, b"p" * 32, 1, 2, 3)
    b = IndexEntry(head + b"b" * 24, BlobType.TREE, b"q" * 32, 4, 5, 6, 1)
    index = Index(flush_every=1)
    index.add_all([b, a])
    assert index.lookup(a.blob_id) == a and index.lookup(b.blob_id) == b
    assert head + b"c" * 24 not in index


def test_a_blob_already_indexed_keeps_its_first_location() -> None:
    first = IndexEntry(b"x" * 32, BlobType.DATA, b"p" * 32, 0, 5, 5)
    again = IndexEntry(b"x" * 32, BlobType.DATA, b"q" * 32, 9, 5, 5)
    index = Index()
    assert index.add(first) is True
    assert index.add(again) is False
    index.flush()
    assert index.add(again) is False
    assert index.lookup(b"x" * 32) == first


def test_merging_index_files_gives_one_index_over_all_packs() -> None:
    files = [
        IndexFile(
            [
                IndexEntry(os.urandom(32), BlobType.DATA, bytes([p]) * 32, i, 1, 1)
                for i in range(500)
            ]
        )
        for p in range(1, 4)
    ]
    index = Index.merge(files)
    assert len(index) == 1500
    assert index.packs() == {bytes([p]) * 32 for p in range(1, 4)}
    for f in files:
        for e in f.entries[::50]:
            assert index.lookup(e.blob_id) == e


def test_incremental_merges_into_a_large_index_keep_it_sorted() -> None:
    index = Index(flush_every=100)
    entries = [IndexEntry(os.urandom(32), BlobType.DATA, b"p" * 32, i, 1, 1) for i in range(5000)]
    index.add_all(entries)
    index.flush()
    ids = [e.blob_id for e in index]
    assert ids == sorted(ids) and len(ids) == 5000
    assert all(index.lookup(e.blob_id) == e for e in entries)


@settings(max_examples=40, deadline=None)
@given(files=st.lists(entries_st, min_size=1, max_size=4), flush_every=st.integers(1, 8))
def test_bulk_loading_index_files_finds_every_entry_with_its_first_location(
    files: list[list[IndexEntry]], flush_every: int
) -> None:
    index = Index(flush_every=flush_every)
    first: dict[bytes, IndexEntry] = {}
    for n, entries in enumerate(files):
        index_id = bytes([n]) * 32
        data = encode_index(CIPHER, index_id, IndexFile(entries))
        assert load_index_file(CIPHER, index_id, data, index) == len(entries)
        for e in entries:
            first.setdefault(e.blob_id, e)
    index.flush()
    assert len(index) == len(first)
    for blob_id, e in first.items():
        assert index.lookup(blob_id) == e
    assert _sorted(index) == _sorted(first.values())


def test_bulk_loading_keeps_the_location_already_in_a_large_index() -> None:
    index = Index(flush_every=4)
    olds = [IndexEntry(os.urandom(32), BlobType.DATA, b"o" * 32, i, 5, 5) for i in range(40)]
    index.add_all(olds)
    index.flush()
    again = [IndexEntry(e.blob_id, e.blob_type, b"n" * 32, 99, 5, 5) for e in olds[:3]]
    data = encode_index(CIPHER, b"i" * 32, IndexFile(again))
    load_index_file(CIPHER, b"i" * 32, data, index)  # 3 pending vs 40 sorted: merge path
    index.flush()
    assert len(index) == 40
    assert [index.lookup(e.blob_id) for e in olds[:3]] == olds[:3]


def test_a_bulk_loaded_index_file_with_an_unknown_blob_type_adds_nothing() -> None:
    entries = [IndexEntry(os.urandom(32), BlobType.DATA, b"p" * 32, i, 5, 5) for i in range(3)]
    aad = ids.aad(b"VKI", b"i" * 32)
    body = NullCipher().open_(encode_index(NullCipher(), b"i" * 32, IndexFile(entries)), aad)
    plain = zstandard.ZstdDecompressor().decompress(body[1:]) if body[0] == 1 else body[1:]
    last = len(plain) - ENTRY.size  # the type byte of the last record
    sealed = NullCipher().seal(b"\x00" + plain[:last] + b"\x07" + plain[last + 1 :], aad)
    index = Index()
    with pytest.raises(IntegrityError, match="malformed"):
        load_index_file(NullCipher(), b"i" * 32, sealed, index)
    assert len(index) == 0


_few_ids = st.builds(lambda first, head, tail: bytes([first]) + head + tail,
                     st.sampled_from([0, 7, 255]), st.binary(min_size=7, max_size=7),
                     st.sampled_from([b"a" * 24, b"b" * 24]))
_ops = st.lists(st.tuples(st.sampled_from(["add", "records", "flush"]),
                          st.lists(_few_ids, max_size=40),
                          st.sampled_from([b"\x01" * 32, b"\x02" * 32, b"\x03" * 32])),
                max_size=12)


@settings(max_examples=80, deadline=None)
@given(ops=_ops, flush_every=st.integers(1, 64), prefill=st.integers(0, 400))
def test_merging_in_any_order_and_batch_size_keeps_the_first_location_of_every_blob(
    ops: list[tuple[str, list[bytes], bytes]], flush_every: int, prefill: int
) -> None:
    """The bucketed merge (a C sort for comparable sizes, runs copied between insertion
    points for a few rows into many) equals a dict where the first location wins."""
    index = Index(flush_every=flush_every)
    model: dict[bytes, IndexEntry] = {}
    filler = [IndexEntry(bytes([7]) + os.urandom(31), BlobType.DATA, b"\x09" * 32, i, 1, 1)
              for i in range(prefill)]  # one big bucket: the copying merge path
    index.add_all(filler)
    model.update((e.blob_id, e) for e in filler)
    for n, (op, blob_ids, pack_id) in enumerate(ops):
        entries = [IndexEntry(b, BlobType(i % 2), pack_id, n * 100 + i, i, i + 1, i % 2)
                   for i, b in enumerate(blob_ids)]
        if op == "add":
            for e in entries:
                assert index.add(e) is (e.blob_id not in model)
                model.setdefault(e.blob_id, e)
        elif op == "records":
            index.add_records(pack_id, b"".join(pack_entry(e) for e in entries))
            for e in entries:
                model.setdefault(e.blob_id, e)
        else:
            index.flush()
    index.flush()
    assert len(index) == len(model)
    for blob_id, e in model.items():
        assert index.lookup(blob_id) == e and index.pack_of(blob_id) == e.pack_id
    assert [e.blob_id for e in index] == sorted(model)
    assert index.lookup(bytes([7]) + b"\x00" * 31) is None or bytes([7]) + b"\x00" * 31 in model
    by_pack: dict[bytes, set[bytes]] = {}
    for e in model.values():
        by_pack.setdefault(e.pack_id, set()).add(pack_entry(e))
    records = index.pack_records()
    assert {p: {r[i : i + ENTRY.size] for i in range(0, len(r), ENTRY.size)}
            for p, r in records.items()} == by_pack
