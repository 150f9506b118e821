"""GNU tar as the producer and consumer of tar streams for a directory.

``create_stream(src)`` runs ``tar --create`` over a directory and yields its stdout;
``extract_stream(dest)`` runs ``tar --extract`` into a directory and yields a writable
input. Both use the POSIX (pax) format with numeric owners, xattrs, ACLs and sparse files,
so the stored archives restore with plain GNU tar::

    zstd -dc X.tar.zst | tar -xpf - --xattrs --xattrs-include='*' --numeric-owner -C /dest

Any non-zero exit of tar is a failure, including exit 1 ("file changed as we read it",
"file removed before we read it"): a volume that changes or vanishes mid-backup does
not yield a backup that silently misses files. The error carries tar's own message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, BinaryIO

from common.errors import InvalidInput, NotFound, VolkeeperError

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
#: ``tar --create``'s record size, in 512-byte blocks: 2048 (1 MiB, the pipe's size and
#: the chunk the archive writer reads) instead of tar's default 20 (10 KiB). tar then
#: writes its pipe in 1 MiB pieces: on the mixed 1 GiB volume ~110k pipe writes become
#: ~1k, and the reader's ~68k short reads (each a GIL hand-over to the scanner thread)
#: ~1k. The stream is the same but for more zero padding after its end-of-archive
#: marker (up to a record), which every tar reader skips (plain ``tar -x``, Go's
#: archive/tar, Python's tarfile, the scanner). Extraction keeps tar's default: a 1 MiB
#: record there measured no better.
BLOCKING_FACTOR = 2048
#: the stream's length is a multiple of this (``common.engine.sizing`` estimates it)
RECORD = BLOCKING_FACTOR * 512

CREATE_ARGS = [
    "--create", "--file=-", "--format=posix", "--numeric-owner", "--sparse",
    "--xattrs", "--xattrs-include=*", "--acls",
    "--pax-option=delete=atime,delete=ctime", f"--blocking-factor={BLOCKING_FACTOR}",
]
EXTRACT_ARGS = [
    "--extract", "--file=-", "--numeric-owner", "--same-owner", "--preserve-permissions",
    "--xattrs", "--xattrs-include=*", "--acls",
]


class TarError(VolkeeperError):
    """GNU tar failed while reading or writing a directory."""

    code = "tar_error"


def tar_binary() -> str:
    """Path of GNU tar; raises TarError when it is missing or not GNU tar."""
    path = shutil.which("tar")
    if path is None:
        raise TarError("GNU tar is not installed on this host", "install the 'tar' package")
    return path


def _grow_pipe(stream: IO[bytes] | None) -> None:
    if stream is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(stream.fileno(), F_SETPIPE_SZ, PIPE_SIZE)


def _stderr_text(err: IO[bytes]) -> str:
    """tar's message: its first lines and its last, a line repeated in a row said once."""
    err.seek(0)
    lines: list[str] = []
    counts: list[int] = []
    for line in err.read().decode("utf-8", "replace").splitlines():
        line = line.strip()
        if lines and line == lines[-1]:
            counts[-1] += 1
        elif line:
            lines.append(line)
            counts.append(1)
    said = [f"{line} (x{n})" if n > 1 else line for line, n in zip(lines, counts, strict=True)]
    if len(said) > 12:
        said = [*said[:6], f"... {len(said) - 10} more lines ...", *said[-4:]]
    text = "\n".join(said)
    return (text[:1500] + " ... " + text[-1500:] if len(text) > 3000 else text) or \
        "(tar printed nothing)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _create_failure(src: str, rc: int, err: IO[bytes]) -> TarError:
    return TarError(f"tar could not read {src} completely (exit {rc}): {_stderr_text(err)}",
                    "make sure the volume is not deleted or written to during the backup "
                    "(stop its containers), then retry")


@contextlib.contextmanager
def _exclude_list(names: Sequence[str]) -> Iterator[int]:
    """A file descriptor of the list of ``names`` (``./NAME`` a line) for tar's
    ``--exclude-from``: an anonymous file, gone with its last descriptor, so a process
    killed during its backup leaves no list behind (a named temporary file did)."""
    fd = os.memfd_create("volkeeper-exclude", os.MFD_CLOEXEC)
    try:
        data = "".join(f"./{p}\n" for p in names).encode("utf-8", "surrogateescape")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def create_stream(src_dir: str | os.PathLike[str],
                  exclude: Sequence[str] = ()) -> Iterator[BinaryIO]:
    """Yield the tar stream of ``src_dir`` (members named ``./…``); read it to the end.
    ``exclude``: paths relative to ``src_dir`` left out, matched literally (an excluded
    directory with everything below it; ``common.archive.excludes`` finds them).

    Raises NotFound if the directory is missing and TarError, after the block, if tar
    exited non-zero (unreadable, changed or vanished files).
    """
    src = os.fspath(src_dir)
    if not os.path.isdir(src):
        raise NotFound("directory", src, "check the volume's mountpoint")
    names = [p for p in exclude if "\n" not in p]  # tar reads one name a line
    with tempfile.TemporaryFile() as err, _exclude_list(names) as listed:
        skip = (["--anchored", "--no-wildcards", f"--exclude-from=/dev/fd/{listed}"]
                if names else [])
        proc = subprocess.Popen(
            [tar_binary(), *CREATE_ARGS, *skip, f"--directory={src}", "."],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, bufsize=0,
            pass_fds=(listed,) if names else (),
        )
        _grow_pipe(proc.stdout)
        assert proc.stdout is not None
        try:
            yield proc.stdout  # type: ignore[misc]
        except BaseException as exc:
            proc.stdout.close()
            rc = proc.poll()
            _stop(proc)
            if rc:  # tar had failed already: its message explains the consumer's error
                raise _create_failure(src, rc, err) from exc
            raise
        rest = proc.stdout.read(1)
        proc.stdout.close()
        rc = proc.wait()
        if rc != 0:
            raise _create_failure(src, rc, err)
        if rest:
            raise TarError(f"the tar stream of {src} was not read to its end",
                           "this is a bug in the caller of create_stream")


class _TarInput:
    """The stdin of ``tar --extract``; a write after tar died raises TarError."""

    def __init__(self, proc: subprocess.Popen[bytes], dest: str, err: IO[bytes]) -> None:
        self.proc = proc
        self.dest = dest
        self.err = err
        assert proc.stdin is not None
        self.stdin = proc.stdin

    def failure(self, rc: int) -> TarError:
        return TarError(f"tar could not extract into {self.dest} (exit {rc}): "
                        f"{_stderr_text(self.err)}",
                        "check free space and that the destination supports ownership "
                        "and xattrs")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data``. The pipe is unbuffered: a write interrupted by a signal
        (a profiler, a timer, SIGCHLD) after some bytes went through returns that count,
        and the rest must be written again, or tar would see a gap in its stream."""
        view = memoryview(data).cast("B")
        try:
            while view:
                written = self.stdin.write(view)
                view = view[written or 0:]
        except BrokenPipeError:
            _stop(self.proc)
            raise self.failure(self.proc.returncode) from None
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""


@contextlib.contextmanager
def extract_stream(dest_dir: str | os.PathLike[str],
                   members: Sequence[str] | None = None) -> Iterator[BinaryIO]:
    """Yield a writable pipe into ``tar --extract`` running in ``dest_dir``.

    ``members`` restricts extraction to those member names (``./a/b``; a directory brings
    everything below it), matched literally (no wildcards).

    After the block, waits for tar and raises TarError with tar's message if it failed.
    On an exception in the block tar is killed (what it extracted so far stays).
    """
    dest = os.fspath(dest_dir)
    if not os.path.isdir(dest):
        raise InvalidInput(f"restore destination {dest} is not a directory",
                           "create it (or the volume) first")
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [tar_binary(), *EXTRACT_ARGS, f"--directory={dest}",
             *(["--no-wildcards", "--", *members] if members else [])],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, bufsize=0,
        )
        _grow_pipe(proc.stdin)
        sink = _TarInput(proc, dest, err)
        try:
            yield sink  # type: ignore[misc]
        except BaseException:
            with contextlib.suppress(OSError):
                sink.stdin.close()
            _stop(proc)
            raise
        with contextlib.suppress(BrokenPipeError):
            sink.stdin.close()
        rc = proc.wait()
        if rc != 0:
            raise sink.failure(rc)
