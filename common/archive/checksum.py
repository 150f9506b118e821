"""The checksum of a stored archive object, as the catalog and the manifest record it.

Archives written with version 2 manifests carry ``blake3:<hex>`` (what ``b3sum`` prints
for the object, several times cheaper than sha256); older ones a bare sha256 hex (what
``sha256sum`` prints). The string names its algorithm, so restore, verify and copy check
either kind: ``ObjectHash.for_checksum(expected)`` hashes the way ``expected`` was made.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import blake3

Algorithm = Literal["blake3", "sha256"]
#: The algorithm of new archives' checksums.
DEFAULT: Algorithm = "blake3"
_PREFIX = "blake3:"


def algorithm_of(checksum: str) -> Algorithm:
    """The algorithm a recorded checksum was made with."""
    return "blake3" if checksum.startswith(_PREFIX) else "sha256"


class ObjectHash:
    """Hashes an archive object as it streams by; ``checksum()`` is the recorded form."""

    def __init__(self, algorithm: Algorithm = DEFAULT) -> None:
        self.algorithm = algorithm
        self._h: blake3.blake3 | hashlib._Hash = \
            blake3.blake3() if algorithm == "blake3" else hashlib.sha256()

    @classmethod
    def for_checksum(cls, checksum: str) -> ObjectHash:
        """A hash of the kind ``checksum`` is."""
        return cls(algorithm_of(checksum))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def checksum(self) -> str:
        hexdigest = self._h.hexdigest()
        return _PREFIX + hexdigest if self.algorithm == "blake3" else hexdigest


def same(actual: str | None, expected: str) -> bool:
    """Whether ``actual`` (as ``ObjectHash.checksum`` made it) is the recorded ``expected``
    (hex digits in either case)."""
    return actual is not None and actual == expected.lower()
