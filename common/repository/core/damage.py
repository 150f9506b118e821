"""Damage marks: what a check found damaged, recorded in the repository itself.

A *damage mark* (``volkeeper/repo/damaged/<random id>``, sealed with
``aad = "VKD" v1 || id``) lists pack ids that are damaged as a whole (missing, truncated,
header unreadable) and (blob id, pack id) pairs: one stored *copy* of a blob that failed
to decode. Marks are only ever added by a check (one new object each, so checks on
several hosts never overwrite each other) and removed by ``repair`` once the damaged packs
are gone. Every reader applies them when loading the index (``Repository.load_index``):
a damaged copy is left out, so a backup stores the blob again, a healthy copy elsewhere
wins, and restore reads that copy.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from common.errors import IntegrityError, NotFound
from common.repository.core import ids
from common.repository.core.crypto import Cipher
from common.storage.base import Backend

DAMAGED_PREFIX = ids.PREFIX + "damaged/"
_AAD_KIND = b"VKD"


def damage_key(mark_id: bytes) -> str:
    """``volkeeper/repo/damaged/<64 hex>``."""
    return DAMAGED_PREFIX + mark_id.hex()


@dataclass
class Damage:
    """Damaged packs (as a whole) and damaged blob copies (blob id -> pack ids)."""

    packs: set[bytes] = field(default_factory=set)
    blobs: dict[bytes, set[bytes]] = field(default_factory=dict)
    #: The mark objects this was read from (what ``repair`` removes when done).
    marks: list[bytes] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.packs or self.blobs)

    def add_blob(self, blob_id: bytes, pack_id: bytes) -> None:
        """Record that the copy of ``blob_id`` in ``pack_id`` is damaged."""
        self.blobs.setdefault(blob_id, set()).add(pack_id)

    def is_damaged(self, blob_id: bytes, pack_id: bytes) -> bool:
        """True when this copy of the blob must not be used."""
        return pack_id in self.packs or pack_id in self.blobs.get(blob_id, ())

    def by_pack(self) -> dict[bytes, set[bytes]]:
        """Pack id -> ids of its damaged blobs (blob marks only)."""
        out: dict[bytes, set[bytes]] = {}
        for blob_id, packs in self.blobs.items():
            for pack_id in packs:
                out.setdefault(pack_id, set()).add(blob_id)
        return out

    def affected_packs(self) -> set[bytes]:
        """Every pack named by a mark (whole or through one of its blobs)."""
        return self.packs | set(self.by_pack())

    def without(self, known: Damage) -> Damage:
        """What of these marks ``known`` does not already say."""
        out = Damage(packs=self.packs - known.packs)
        for blob_id, packs in self.blobs.items():
            for pack_id in packs:
                if pack_id not in out.packs and not known.is_damaged(blob_id, pack_id):
                    out.add_blob(blob_id, pack_id)
        return out

    def merge(self, other: Damage) -> None:
        """Add ``other``'s marks to these."""
        self.packs |= other.packs
        for blob_id, packs in other.blobs.items():
            self.blobs.setdefault(blob_id, set()).update(packs)
        self.marks.extend(other.marks)


def encode_damage(cipher: Cipher, mark_id: bytes, damage: Damage, source: str) -> bytes:
    """Serialise and seal one damage mark."""
    doc = {
        "v": 1,
        "created": datetime.now(UTC).isoformat(),
        "host": socket.gethostname(),
        "source": source,
        "packs": sorted(p.hex() for p in damage.packs),
        "blobs": sorted([b.hex(), p.hex()] for b, ps in damage.blobs.items() for p in ps),
    }
    plain = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return cipher.seal(plain, ids.aad(_AAD_KIND, mark_id))


def decode_damage(cipher: Cipher, mark_id: bytes, data: bytes) -> Damage:
    """Open one damage mark; IntegrityError naming it when damaged or malformed."""
    plain = cipher.open_(data, ids.aad(_AAD_KIND, mark_id), f"damage mark {mark_id.hex()}")
    try:
        doc = json.loads(plain)
        if doc.get("v") != 1:
            raise ValueError(f"unknown version {doc.get('v')!r}")
        out = Damage(marks=[mark_id])
        out.packs = {ids.parse_id(p) for p in doc["packs"]}
        for blob_hex, pack_hex in doc["blobs"]:
            out.add_blob(ids.parse_id(blob_hex), ids.parse_id(pack_hex))
        return out
    except Exception as exc:  # noqa: BLE001 - any malformation: one error naming the mark
        raise IntegrityError(
            f"damage mark {mark_id.hex()} is malformed: {exc}",
            "delete it; the next check --read-data records the damage again") from None


def write_damage(backend: Backend, cipher: Cipher, damage: Damage, source: str) -> bytes | None:
    """Record ``damage`` as one new mark object (atomic: the object appears whole or not
    at all); returns its id, None when there is nothing to record."""
    if not damage:
        return None
    mark_id = ids.random_id()
    backend.put_bytes(damage_key(mark_id), encode_damage(cipher, mark_id, damage, source))
    return mark_id


def read_damage(backend: Backend, cipher: Cipher) -> tuple[Damage, dict[bytes, str]]:
    """Every damage mark merged, plus the marks that could not be read (id -> why)."""
    out = Damage()
    unreadable: dict[bytes, str] = {}
    for info in backend.list(DAMAGED_PREFIX):
        try:
            mark_id = ids.id_from_key(info.key)
        except Exception:  # noqa: BLE001 - a stray object: not a mark
            continue
        try:
            out.merge(decode_damage(cipher, mark_id, backend.get_bytes(info.key)))
        except NotFound:
            continue  # removed by a repair since we listed
        except IntegrityError as exc:
            unreadable[mark_id] = str(exc)
    return out, unreadable


def remove_marks(backend: Backend, mark_ids: Iterable[bytes]) -> int:
    """Delete the given mark objects (a repair's last step); returns how many."""
    n = 0
    for mark_id in mark_ids:
        with contextlib.suppress(NotFound):
            backend.delete(damage_key(mark_id))
            n += 1
    return n
