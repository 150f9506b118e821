"""The pipe into ``tar --extract``: every byte reaches tar, also when writes come back
short (a signal interrupting a blocking write into the pipe), and tar's complaints are
said once, not a thousand times."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.archive import gnutar


class _ShortWrites:
    """A raw pipe that takes at most 1000 bytes per write, like one a signal interrupts."""

    def __init__(self) -> None:
        self.got = bytearray()

    def write(self, data: Any) -> int:
        part = bytes(memoryview(data)[:1000])
        self.got += part
        return len(part)


class _Proc:
    def __init__(self) -> None:
        self.stdin = _ShortWrites()
        self.returncode = 0


def test_a_short_write_is_completed_not_dropped() -> None:
    proc = _Proc()
    sink = gnutar._TarInput(proc, "/nowhere", io.BytesIO())  # type: ignore[arg-type]
    data = os.urandom(10_000)
    assert sink.write(data) == len(data)
    assert sink.write(memoryview(data)) == len(data)
    assert bytes(proc.stdin.got) == data + data


def _tree_tar(n: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for i in range(n):
            payload = os.urandom(4096 + i % 7000)
            info = tarfile.TarInfo(f"./d{i % 10}/f{i}")
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.fixture
def busy_signals() -> Iterator[None]:
    """A timer signal every 0.2 ms: blocking writes into the pipe get interrupted."""
    old = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)


def test_tar_extracts_every_member_while_signals_interrupt_the_writes(
        tmp_path: Path, busy_signals: None) -> None:
    stream = _tree_tar(3000)
    with gnutar.extract_stream(tmp_path) as sink:
        view = memoryview(stream)
        for at in range(0, len(stream), 1 << 20):
            sink.write(view[at:at + (1 << 20)])
    listed = subprocess.run(["tar", "-tf", "-"], input=stream, capture_output=True,
                            check=True).stdout.decode().split()
    got = sorted("./" + str(p.relative_to(tmp_path)) for p in tmp_path.rglob("f*"))
    assert got == sorted(m for m in listed if "/f" in m) and len(got) == 3000


def test_tar_s_repeated_complaints_are_said_once_with_a_count() -> None:
    err = io.BytesIO(b"tar: Skipping to next header\n" * 500 + b"tar: Exiting with failure\n")
    text = gnutar._stderr_text(err)
    assert text == "tar: Skipping to next header (x500)\ntar: Exiting with failure"
