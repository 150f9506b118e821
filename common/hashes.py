"""hashlib without OpenSSL, for a one-shot command that hashes no bulk data with it.

hashlib loads OpenSSL's libcrypto (``_hashlib``) when it is first imported: ~3.4 MiB of
resident memory in a process that already holds cryptography's own OpenSSL (the
repository's ciphers). A one-shot ``volkeeper backup`` hashes nothing large with hashlib —
a repository's chunk, tree and pack ids are keyed BLAKE3, an archive's manifest (version 2)
digests each file with BLAKE3; SHA-256 only names small things (API tokens, key-cache
entries, a file's chunk list, a manifest's lines) — and its peak RSS is what the user
compares with restic's (issue 10; the unchanged re-backup of the mixed 1 GiB set: 76 → 73
MiB with this alone).

``builtin_only`` (before hashlib is first imported) makes hashlib use CPython's built-in
MD5, SHA-1, SHA-2, SHA-3 and BLAKE2, which are ~5x slower per byte than OpenSSL's on a CPU
with SHA extensions (333 vs 1816 MiB/s here) and the same for short inputs. ``use_openssl``
brings OpenSSL's back where bulk data is about to be hashed with SHA-2: an S3 backend
(botocore signs every payload with SHA-256 over plain HTTP) calls it before it imports
botocore. It reloads hashlib, whose functions callers read at call time
(``hashlib.sha256(...)``); a function taken from it before (``from hashlib import sha256``)
stays the built-in one, which hashes the same bytes to the same digest.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

#: the built-in modules hashlib falls back on (a FIPS build of CPython may lack them)
BUILTINS = ("_md5", "_sha1", "_sha256", "_sha512", "_sha3", "_blake2")
_lock = threading.Lock()


def builtin_only() -> bool:
    """Keep OpenSSL's hashes out of this process (see the module's docstring). Only before
    hashlib is first imported, and only where every built-in hash is there; whether it
    took effect."""
    if "hashlib" in sys.modules or "_hashlib" in sys.modules:
        return False
    if any(importlib.util.find_spec(name) is None for name in BUILTINS):
        return False
    sys.modules["_hashlib"] = None  # type: ignore[assignment]  # import _hashlib: ImportError
    return True


def openssl_kept_out() -> bool:
    """Whether ``builtin_only`` is in effect."""
    return "_hashlib" in sys.modules and sys.modules["_hashlib"] is None


def use_openssl() -> None:
    """OpenSSL's hashes again after ``builtin_only`` (nothing otherwise): before a module
    that hashes bulk data with SHA-2 takes hashlib's functions."""
    if not openssl_kept_out():
        return
    with _lock:
        if not openssl_kept_out():
            return
        del sys.modules["_hashlib"]
        hashlib = sys.modules.get("hashlib")
        if hashlib is not None:
            importlib.reload(hashlib)
