"""Sealing and opening objects: round trips, and every kind of damage is detected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import IntegrityError
from common.repository.core.crypto import (
    SEAL_INTO_MIN,
    AesGcmCipher,
    Key,
    NullCipher,
    cipher_for,
    open_,
    seal,
)

KEY = Key.new()
CIPHERS = [AesGcmCipher(KEY.enc_key), NullCipher()]


@pytest.mark.parametrize("cipher", CIPHERS, ids=["aes-gcm", "null"])
@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=64))
def test_seal_then_open_returns_the_plaintext(cipher, plaintext: bytes, aad: bytes) -> None:
    sealed = cipher.seal(plaintext, aad)
    assert len(sealed) == len(plaintext) + cipher.overhead
    assert cipher.open_(sealed, aad) == plaintext


@pytest.mark.parametrize("cipher", CIPHERS, ids=["aes-gcm", "null"])
@pytest.mark.parametrize("size", [0, 1, SEAL_INTO_MIN - 1, SEAL_INTO_MIN, SEAL_INTO_MIN + 17,
                                  (3 << 20) + 5])
@pytest.mark.parametrize("prefix", [b"", b"\x01", b"head"])
def test_seal_prefixed_is_a_seal_of_prefix_and_payload(cipher, size: int, prefix: bytes
                                                       ) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sealed = cipher.seal_prefixed(prefix, memoryview(payload) if size % 2 else payload, b"aad")
    assert len(sealed) == len(prefix) + size + cipher.overhead
    assert cipher.open_(bytes(sealed), b"aad") == prefix + payload
    assert cipher.open_(sealed, b"aad") == prefix + payload  # a bytearray opens as well
    with pytest.raises(IntegrityError):
        cipher.open_(sealed, b"other aad")
    damaged = bytearray(sealed)
    damaged[len(damaged) // 2] ^= 0x10
    with pytest.raises(IntegrityError):
        cipher.open_(damaged, b"aad")


def test_large_payloads_are_sealed_in_place_with_fresh_nonces() -> None:
    cipher = CIPHERS[0]
    payload = bytes(SEAL_INTO_MIN)
    one, two = (cipher.seal_prefixed(b"\x00", payload, b"a") for _ in range(2))
    assert isinstance(one, bytearray)  # the sealed object is the buffer it was encrypted into
    assert one[1:13] != two[1:13] and one[13:] != two[13:]
    assert payload[:64] not in one


@pytest.mark.parametrize("cipher", CIPHERS, ids=["aes-gcm", "null"])
@settings(max_examples=80, deadline=None)
@given(plaintext=st.binary(max_size=512), aad=st.binary(max_size=16), data=st.data())
def test_any_single_flipped_bit_is_an_integrity_error(cipher, plaintext, aad, data) -> None:
    sealed = bytearray(cipher.seal(plaintext, aad))
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        cipher.open_(bytes(sealed), aad, "test object")


@pytest.mark.parametrize("cipher", CIPHERS, ids=["aes-gcm", "null"])
def test_different_associated_data_is_an_integrity_error(cipher) -> None:
    sealed = cipher.seal(b"payload", b"blob 1")
    with pytest.raises(IntegrityError, match="blob 2"):
        cipher.open_(sealed, b"blob 2", "blob 2")


@pytest.mark.parametrize("cipher", CIPHERS, ids=["aes-gcm", "null"])
def test_truncated_objects_are_integrity_errors(cipher) -> None:
    sealed = cipher.seal(b"x" * 100, b"")
    for cut in (0, 1, cipher.overhead - 1, len(sealed) - 1):
        with pytest.raises(IntegrityError):
            cipher.open_(sealed[:cut], b"")


def test_another_key_cannot_open_an_object() -> None:
    sealed = seal(KEY, b"secret", b"aad")
    assert open_(KEY, sealed, b"aad") == b"secret"
    with pytest.raises(IntegrityError, match="failed to authenticate"):
        open_(Key.new(), sealed, b"aad", "snapshot 1234")


def test_encryption_hides_the_plaintext_and_uses_fresh_nonces() -> None:
    a, b = seal(KEY, b"A" * 64, b""), seal(KEY, b"A" * 64, b"")
    assert a != b
    assert b"AAAA" not in a


def test_ciphers_refuse_objects_sealed_by_the_other_kind() -> None:
    plain_obj = NullCipher().seal(b"data", b"")
    with pytest.raises(IntegrityError, match="not encrypted with this repository's cipher"):
        AesGcmCipher(KEY.enc_key).open_(plain_obj, b"")
    with pytest.raises(IntegrityError, match="not that of an unencrypted repository"):
        NullCipher().open_(seal(KEY, b"data", b""), b"")


def test_key_material_round_trips_and_never_prints() -> None:
    assert Key.from_bytes(KEY.to_bytes()) == KEY
    assert KEY.enc_key.hex() not in repr(KEY)
    assert cipher_for(KEY, encrypted=False).encrypted is False
    with pytest.raises(IntegrityError):
        Key.from_bytes(b"short")
