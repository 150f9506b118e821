"""Pack files: write/read round trips, headers, and damage found and named."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import IntegrityError, NotFound
from common.repository import ids
from common.repository.core.blob import BlobCodec
from common.repository.core.crypto import Key
from common.repository.core.ids import BlobType
from common.repository.core.index import IndexEntry
from common.repository.core.pack import PackWriter, read_blob, read_pack, read_pack_header
from common.storage.memory import MemoryBackend

KEY = Key.new()
CODEC = BlobCodec(KEY)

blobs_st = st.lists(
    st.one_of(
        st.just(b""),
        st.binary(max_size=3000),
        st.integers(1, 20000).map(os.urandom),
        st.integers(1, 20000).map(lambda n: b"z" * n),
    ),
    max_size=25,
)


def _write(
    backend: MemoryBackend, blobs: list[bytes], codec: BlobCodec = CODEC
) -> tuple[str, list[IndexEntry]]:
    with PackWriter(backend, codec.cipher) as pack:
        for i, b in enumerate(blobs):
            pack.add(codec.encode(BlobType.TREE if i % 3 == 0 else BlobType.DATA, b))
        return pack.key, pack.finish()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blobs=blobs_st, encrypted=st.booleans())
def test_blobs_written_to_a_pack_read_back_identically(blobs, encrypted) -> None:
    backend = MemoryBackend()
    codec = BlobCodec(KEY, encrypted=encrypted)
    key, entries = _write(backend, blobs, codec)
    if not blobs:
        assert entries == [] and list(backend.list()) == []
        return
    assert read_pack_header(backend, key, codec.cipher) == entries
    for blob, entry in zip(blobs, entries, strict=True):
        assert entry.pack_id == ids.id_from_key(key)
        assert read_blob(backend, key, entry, codec) == blob
    header, data = read_pack(backend, key, codec.cipher)
    assert header == entries and len(data) == backend.stat(key).size


def test_a_pack_is_invisible_until_finished_and_an_abort_leaves_nothing() -> None:
    backend = MemoryBackend()
    with PackWriter(backend, CODEC.cipher) as pack:
        pack.add(CODEC.encode(BlobType.DATA, b"data"))
        assert list(backend.list()) == []
    assert list(backend.list()) == []
    with pytest.raises(RuntimeError), PackWriter(backend, CODEC.cipher) as pack:
        pack.add(CODEC.encode(BlobType.DATA, b"data"))
        raise RuntimeError("writer killed")
    assert list(backend.list()) == []


def test_packs_live_under_a_two_hex_digit_fan_out() -> None:
    backend = MemoryBackend()
    key, _ = _write(backend, [b"x"])
    pack_hex = key.rsplit("/", 1)[1]
    assert key == f"volkeeper/repo/packs/{pack_hex[:2]}/{pack_hex}"


def test_fits_keeps_packs_within_their_target_size() -> None:
    backend = MemoryBackend()
    pack = PackWriter(backend, CODEC.cipher, target_size=10_000)
    blob = CODEC.encode(BlobType.DATA, os.urandom(4000))
    assert pack.fits(len(blob.data))
    pack.add(blob)
    pack.add(blob)
    assert not pack.fits(len(blob.data))
    assert PackWriter(backend, CODEC.cipher, target_size=10).fits(10**6)  # empty takes any
    pack.abort()


def test_a_flipped_byte_in_a_blob_names_that_blob_and_spares_the_others() -> None:
    backend = MemoryBackend()
    key, entries = _write(backend, [os.urandom(1000) for _ in range(3)])
    data = bytearray(backend.get_bytes(key))
    data[entries[1].offset + 10] ^= 0x01
    backend.put_bytes(key, bytes(data))
    assert read_blob(backend, key, entries[0], CODEC)
    with pytest.raises(IntegrityError, match=entries[1].blob_id.hex()):
        read_blob(backend, key, entries[1], CODEC)
    assert read_blob(backend, key, entries[2], CODEC)


def test_a_truncated_pack_is_an_integrity_error() -> None:
    backend = MemoryBackend()
    key, entries = _write(backend, [os.urandom(1000) for _ in range(3)])
    data = backend.get_bytes(key)
    backend.put_bytes(key, data[: entries[2].offset + 100])
    with pytest.raises(IntegrityError, match="pack"):
        read_pack_header(backend, key, CODEC.cipher)
    with pytest.raises(IntegrityError, match="truncated"):
        read_blob(backend, key, entries[2], CODEC)
    backend.put_bytes(key, data[:2])
    with pytest.raises(IntegrityError, match="truncated"):
        read_pack_header(backend, key, CODEC.cipher)


def test_a_pack_renamed_to_another_id_fails_to_authenticate() -> None:
    backend = MemoryBackend()
    key, _ = _write(backend, [b"abc"])
    other = ids.pack_key(ids.random_id())
    backend.put_bytes(other, backend.get_bytes(key))
    with pytest.raises(IntegrityError, match="header of pack"):
        read_pack_header(backend, other, CODEC.cipher)


def test_a_missing_pack_is_not_found_naming_its_key() -> None:
    backend = MemoryBackend()
    key, entries = _write(backend, [b"abc"])
    backend.delete(key)
    with pytest.raises(NotFound, match=key):
        read_blob(backend, key, entries[0], CODEC)


def test_a_large_header_is_read_with_a_second_range() -> None:
    backend = MemoryBackend()
    blobs = [os.urandom(8) + i.to_bytes(4, "little") for i in range(3000)]  # header > 64 KiB
    key, entries = _write(backend, blobs)
    assert read_pack_header(backend, key, CODEC.cipher) == entries
