"""Blob encoding: compression when it helps, sealing, and verification against the id."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import IntegrityError
from common.repository.core.blob import COMPRESSION_NONE, COMPRESSION_ZSTD, BlobCodec
from common.repository.core.crypto import Key
from common.repository.core.ids import BlobType

KEY = Key.new()
CODECS = [BlobCodec(KEY), BlobCodec(KEY, encrypted=False)]


@pytest.mark.parametrize("codec", CODECS, ids=["encrypted", "unencrypted"])
@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=20000) | st.text().map(str.encode), tree=st.booleans())
def test_encode_then_decode_returns_the_plaintext(codec, plaintext, tree) -> None:
    blob_type = BlobType.TREE if tree else BlobType.DATA
    enc = codec.encode(blob_type, plaintext)
    assert enc.blob_id == codec.blob_id(plaintext)
    assert enc.raw_length == len(plaintext)
    assert codec.decode(blob_type, enc.blob_id, enc.data, enc.raw_length) == plaintext


def test_compressible_blobs_are_compressed_and_random_ones_are_not() -> None:
    codec = CODECS[0]
    text = b"the same line again\n" * 5000
    enc = codec.encode(BlobType.DATA, text)
    assert enc.compression == COMPRESSION_ZSTD and len(enc.data) < len(text) // 10
    noise = os.urandom(100_000)
    enc = codec.encode(BlobType.DATA, noise)
    assert enc.compression == COMPRESSION_NONE
    assert len(enc.data) == len(noise) + 1 + codec.cipher.overhead
    assert codec.decode(BlobType.DATA, enc.blob_id, enc.data, enc.raw_length) == noise


@pytest.mark.parametrize("codec", CODECS, ids=["encrypted", "unencrypted"])
def test_large_blobs_compressed_or_not_decode_to_their_plaintext(codec) -> None:
    half = os.urandom(300_000) + bytes(300_000)  # compresses to ~300 KB: sealed in place too
    for plain, compression in ((os.urandom(3 << 20), COMPRESSION_NONE),
                               (half, COMPRESSION_ZSTD)):
        enc = codec.encode(BlobType.DATA, plain)
        assert enc.compression == compression
        assert codec.decode(BlobType.DATA, enc.blob_id, enc.data, enc.raw_length) == plain
        assert codec.decode(BlobType.DATA, enc.blob_id, bytes(enc.data), len(plain)) == plain


def test_ids_are_keyed_so_another_repository_names_the_same_chunk_differently() -> None:
    assert BlobCodec(KEY).blob_id(b"chunk") != BlobCodec(Key.new()).blob_id(b"chunk")


@pytest.mark.parametrize("codec", CODECS, ids=["encrypted", "unencrypted"])
def test_a_blob_decoded_under_another_id_or_type_is_an_error_naming_it(codec) -> None:
    enc = codec.encode(BlobType.DATA, b"chunk one" * 10)
    other = codec.blob_id(b"chunk two")
    with pytest.raises(IntegrityError, match=other.hex()):
        codec.decode(BlobType.DATA, other, enc.data)
    with pytest.raises(IntegrityError):
        codec.decode(BlobType.TREE, enc.blob_id, enc.data)


def test_a_flipped_byte_in_a_blob_names_the_blob() -> None:
    codec = CODECS[0]
    enc = codec.encode(BlobType.DATA, os.urandom(1000))
    damaged = bytearray(enc.data)
    damaged[500] ^= 0x40
    with pytest.raises(IntegrityError, match=f"data blob {enc.blob_id.hex()}"):
        codec.decode(BlobType.DATA, enc.blob_id, bytes(damaged))


def test_a_wrong_raw_length_is_detected() -> None:
    codec = CODECS[0]
    enc = codec.encode(BlobType.DATA, b"abc" * 100)
    with pytest.raises(IntegrityError, match="the index says 5"):
        codec.decode(BlobType.DATA, enc.blob_id, enc.data, raw_length=5)


def test_unencrypted_blobs_still_detect_a_content_swap() -> None:
    """Without encryption the id check is what catches a blob replaced wholesale."""
    codec = CODECS[1]
    a = codec.encode(BlobType.DATA, b"original content")
    b = codec.encode(BlobType.DATA, b"replacement!!!!!", blob_id=a.blob_id)  # forged id
    with pytest.raises(IntegrityError, match="does not match its id"):
        codec.decode(BlobType.DATA, a.blob_id, b.data)
