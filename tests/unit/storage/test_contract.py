"""The one contract suite every storage backend passes: memory and local directory here, S3
(moto over real HTTP, multipart included) in ``tests/integration/storage/test_s3_contract.py``,
which runs every test below that takes ``case``. Ranged reads have their own file,
``test_storage_ranges.py``, over the same backends plus the base class and the wrappers."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common.errors import Conflict, InvalidInput, NotFound
from common.storage.base import Backend
from common.storage.local import LocalBackend
from common.storage.memory import MemoryBackend

MiB = 1024 * 1024
PART = 5 * MiB  # S3's minimum part size; moto enforces it


@dataclass
class Case:
    backend: Backend
    leftovers: Callable[[], list[str]] = field(default=lambda: [])


def _local_leftovers(root: Path) -> Callable[[], list[str]]:
    def leftovers() -> list[str]:
        if not root.exists():
            return []
        return [str(p) for p in root.rglob("*") if ".partial-" in p.name]

    return leftovers


@pytest.fixture(params=["memory", "local"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    if request.param == "memory":
        yield Case(MemoryBackend("contract"))
    else:
        root = tmp_path / "not-yet" / "root"  # created on first write
        yield Case(LocalBackend(root), _local_leftovers(root))


def pattern(n: int, seed: int = 1) -> bytes:
    """Deterministic, non-repeating-looking bytes (so misplaced parts are detected)."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def read_in_chunks(backend: Backend, key: str, chunk: int) -> bytes:
    parts = []
    with backend.open_reader(key) as r:
        while data := r.read(chunk):
            parts.append(data)
    return b"".join(parts)


def test_put_then_get_returns_the_same_bytes(case: Case) -> None:
    info = case.backend.put_bytes("volkeeper/a/obj.bin", b"hello world")
    assert info.key == "volkeeper/a/obj.bin"
    assert info.size == 11
    assert case.backend.get_bytes("volkeeper/a/obj.bin") == b"hello world"
    st = case.backend.stat("volkeeper/a/obj.bin")
    assert (st.key, st.size) == ("volkeeper/a/obj.bin", 11)
    assert st.modified is not None


def test_an_empty_object_round_trips(case: Case) -> None:
    case.backend.put_bytes("empty", b"")
    assert case.backend.get_bytes("empty") == b""
    assert case.backend.stat("empty").size == 0


def test_a_streaming_write_of_several_parts_round_trips(case: Case) -> None:
    data = pattern(12 * MiB + 12345)
    with case.backend.open_writer("big/object") as w:
        pos = 0
        for step in (1, 1000, 3 * MiB, 7 * MiB + 1, 64 * 1024):  # uneven pieces, some memoryviews
            piece = memoryview(data)[pos : pos + step]
            w.write(piece if step % 2 else bytes(piece))
            pos += step
        while pos < len(data):
            w.write(memoryview(data)[pos : pos + MiB])
            pos += MiB
        assert w.bytes_written == len(data)
        info = w.commit()
    assert info.size == len(data)
    assert case.backend.stat("big/object").size == len(data)
    assert hashlib.sha256(read_in_chunks(case.backend, "big/object", 1_000_003)).digest() == (
        hashlib.sha256(data).digest()
    )
    assert case.backend.get_bytes("big/object") == data
    assert case.leftovers() == []


def test_reader_read_n_returns_exactly_n_bytes_until_the_end(case: Case) -> None:
    data = pattern(100_000)
    case.backend.put_bytes("r", data)
    with case.backend.open_reader("r") as r:
        assert r.read(0) == b""
        assert r.read(40_000) == data[:40_000]
        assert r.read(40_000) == data[40_000:80_000]
        assert r.read(40_000) == data[80_000:]
        assert r.read(40_000) == b""


def test_an_object_is_invisible_until_commit(case: Case) -> None:
    w = case.backend.open_writer("dir/pending")
    w.write(pattern(PART + 100))  # past one part: the S3 upload is multipart and in flight
    assert [i.key for i in case.backend.list("")] == []
    assert [i.key for i in case.backend.list("dir/")] == []
    with pytest.raises(NotFound):
        case.backend.stat("dir/pending")
    with pytest.raises(NotFound):
        case.backend.open_reader("dir/pending")
    w.commit()
    assert [i.key for i in case.backend.list("dir/")] == ["dir/pending"]
    assert case.backend.stat("dir/pending").size == PART + 100


def test_abort_leaves_nothing_behind(case: Case) -> None:
    w = case.backend.open_writer("x/aborted")
    w.write(pattern(PART + 1))
    w.write(b"tail")
    w.abort()
    w.abort()  # safe twice
    with pytest.raises(NotFound):
        case.backend.stat("x/aborted")
    assert list(case.backend.list("")) == []
    assert case.leftovers() == []


def test_a_writer_block_ending_without_commit_aborts(case: Case) -> None:
    with case.backend.open_writer("x/uncommitted") as w:
        w.write(pattern(PART + 7))
    with pytest.raises(NotFound):
        case.backend.stat("x/uncommitted")
    assert case.leftovers() == []


def test_an_exception_inside_a_writer_block_aborts(case: Case) -> None:
    with pytest.raises(RuntimeError), case.backend.open_writer("x/failed") as w:
        w.write(b"some bytes")
        raise RuntimeError("boom")
    assert list(case.backend.list("x/")) == []
    assert case.leftovers() == []


def test_missing_keys_raise_not_found(case: Case) -> None:
    case.backend.put_bytes("present", b"1")
    with pytest.raises(NotFound) as e:
        case.backend.stat("absent/key")
    assert e.value.kind == "object"
    assert e.value.name == "absent/key"
    with pytest.raises(NotFound):
        case.backend.open_reader("absent/key")
    with pytest.raises(NotFound):
        case.backend.get_bytes("absent")
    with pytest.raises(NotFound):
        case.backend.read_range("absent/key", -10)  # ranges: tests/unit/storage/test_ranges.py


def test_deleting_removes_an_object_and_a_missing_key_is_fine(case: Case) -> None:
    case.backend.put_bytes("d/one", b"1")
    case.backend.delete("d/one")
    with pytest.raises(NotFound):
        case.backend.stat("d/one")
    case.backend.delete("d/one")
    case.backend.delete("never/existed")


def test_list_returns_the_keys_under_a_prefix_in_key_order(case: Case) -> None:
    keys = ["a/b", "b/c", "a/c/d", "a-b", "a/a", "ab", "a/c/e/f"]
    for i, key in enumerate(keys):
        case.backend.put_bytes(key, b"x" * i)
    assert [i.key for i in case.backend.list()] == sorted(keys)
    assert [i.key for i in case.backend.list("a/")] == ["a/a", "a/b", "a/c/d", "a/c/e/f"]
    assert [i.key for i in case.backend.list("a")] == sorted(k for k in keys if k[0] == "a")
    assert [i.key for i in case.backend.list("a/c/")] == ["a/c/d", "a/c/e/f"]
    assert [i.key for i in case.backend.list("a/c/e")] == ["a/c/e/f"]
    assert list(case.backend.list("zzz")) == []
    assert {i.key: i.size for i in case.backend.list("b")} == {"b/c": 1}


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a", "a/", "a\\b", "a\x00b", ".."])
def test_invalid_keys_are_rejected(case: Case, key: str) -> None:
    for op in (
        case.backend.open_writer,
        case.backend.open_reader,
        case.backend.stat,
        case.backend.delete,
        lambda k: case.backend.read_range(k, 0, 1),
    ):
        with pytest.raises(InvalidInput):
            op(key)


def test_commit_replaces_an_existing_object(case: Case) -> None:
    case.backend.put_bytes("k", pattern(PART + 10, seed=1))
    with case.backend.open_writer("k") as w:
        w.write(b"new")
        assert case.backend.get_bytes("k") == pattern(PART + 10, seed=1)  # old until commit
        w.commit()
    assert case.backend.get_bytes("k") == b"new"
    assert [(i.key, i.size) for i in case.backend.list()] == [("k", 3)]


def test_an_aborted_replacement_keeps_the_old_object(case: Case) -> None:
    case.backend.put_bytes("keep", b"old")
    with case.backend.open_writer("keep") as w:
        w.write(pattern(PART + 1))
    assert case.backend.get_bytes("keep") == b"old"


def test_concurrent_writers_to_different_keys_all_land(case: Case) -> None:
    errors: list[BaseException] = []

    def put(i: int) -> None:
        try:
            case.backend.put_bytes(f"par/{i:02d}", pattern(10_000 + i, seed=i))
        except Exception as e:  # noqa: BLE001 - collected and asserted on below
            errors.append(e)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [i.key for i in case.backend.list("par/")] == [f"par/{i:02d}" for i in range(8)]
    for i in range(8):
        assert case.backend.get_bytes(f"par/{i:02d}") == pattern(10_000 + i, seed=i)


def test_put_if_absent_creates_a_missing_object_and_refuses_an_existing_one(case: Case) -> None:
    info = case.backend.put_bytes_if_absent("once/config", b"first")
    assert (info.key, info.size) == ("once/config", 5)
    assert case.backend.get_bytes("once/config") == b"first"
    with pytest.raises(Conflict) as e:
        case.backend.put_bytes_if_absent("once/config", b"second")
    assert "once/config" in e.value.message and e.value.hint
    assert case.backend.get_bytes("once/config") == b"first"  # never overwritten
    # the same bytes again is a retry of our own write, not a conflict
    assert case.backend.put_bytes_if_absent("once/config", b"first").size == 5
    case.backend.put_bytes("once/other", b"x")
    with pytest.raises(Conflict):
        case.backend.put_bytes_if_absent("once/other", b"")
    assert case.backend.get_bytes("once/other") == b"x"
    assert [i.key for i in case.backend.list("once/")] == ["once/config", "once/other"]
    assert case.leftovers() == []


def test_put_if_absent_validates_keys(case: Case) -> None:
    with pytest.raises(InvalidInput):
        case.backend.put_bytes_if_absent("../escape", b"x")


# Not run against moto: it checks If-None-Match and then stores without a lock (real S3 is
# atomic); the S3 request itself is covered by the single-writer tests above.
@pytest.mark.parametrize("case", ["memory", "local"], indirect=True)
def test_racing_put_if_absent_has_exactly_one_winner(case: Case) -> None:
    results: dict[int, str] = {}
    start = threading.Barrier(8)

    def put(i: int) -> None:
        start.wait()
        try:
            case.backend.put_bytes_if_absent("race/config", pattern(3000, seed=i))
            results[i] = "won"
        except Conflict:
            results[i] = "lost"

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in results.items() if r == "won"]
    assert len(results) == 8 and len(winners) == 1
    assert case.backend.get_bytes("race/config") == pattern(3000, seed=winners[0])
    assert case.leftovers() == []


def test_check_passes_on_a_usable_backend(case: Case) -> None:
    case.backend.check()


def test_local_writes_create_the_root_and_list_hides_partial_files(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "root"
    backend = LocalBackend(root)
    assert list(backend.list()) == []
    w = backend.open_writer("v/obj")
    w.write(b"abc")
    partials = [p for p in root.rglob("*") if p.is_file()]
    assert len(partials) == 1
    assert partials[0].name.startswith(".obj.partial-")
    assert partials[0].parent == root / "v"
    assert list(backend.list()) == []
    w.commit()
    assert [p.name for p in (root / "v").iterdir()] == ["obj"]
    assert os.listdir(root) == ["v"]
