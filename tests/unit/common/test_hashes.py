"""``common.hashes``: a one-shot embedded repository backup keeps OpenSSL's libcrypto out
of hashlib (its peak RSS), the same digests come out, and an S3 target (botocore signs
payloads with SHA-256) or any other command gets OpenSSL's hashes. Each case runs in a
fresh interpreter: whether hashlib has OpenSSL is decided before it is first imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
EXPECT = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"  # sha256("hello world")
PROBE = """
import hashlib, hmac, sys
h = hashlib.sha256(b"hello world")
print(type(h).__name__, h.hexdigest(), hmac.new(b"k", b"m", hashlib.sha256).hexdigest()[:8],
      sys.modules.get("_hashlib") is not None)
"""


def _run(code: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", code + PROBE], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_builtin_only_keeps_openssl_out_and_hashes_the_same() -> None:
    plain = _run("")
    lean = _run("from common.hashes import builtin_only; assert builtin_only()\n")
    assert plain[0] == "HASH" and plain[3] == "True"  # OpenSSL's, loaded
    assert lean[0] == "sha256" and lean[3] == "False"  # the built-in one; no libcrypto
    assert plain[1] == lean[1] == EXPECT
    assert plain[2] == lean[2]  # HMAC too


def test_too_late_once_hashlib_is_imported() -> None:
    out = _run("import hashlib\nfrom common.hashes import builtin_only\n"
               "assert not builtin_only()\n")
    assert out[0] == "HASH"


def test_use_openssl_brings_openssl_back() -> None:
    out = _run("from common.hashes import builtin_only, use_openssl\nassert builtin_only()\n"
               "import hashlib\nassert type(hashlib.sha256()).__name__ == 'sha256'\n"
               "use_openssl()\n")
    assert out[0] == "HASH" and out[1] == EXPECT and out[3] == "True"


def test_an_s3_target_gets_openssl_before_botocore() -> None:
    out = _run("from common.hashes import builtin_only\nassert builtin_only()\n"
               "import hashlib\nfrom common.storage.registry import _s3\n_s3()\n"
               "import botocore.auth\n"
               "assert type(botocore.auth.sha256()).__name__ == 'HASH'\n")
    assert out[0] == "HASH"


def test_an_embedded_backup_command_runs_without_openssl_hashes() -> None:
    """``volkeeper backup`` (embedded) keeps OpenSSL out before it opens its front (its
    data is hashed with BLAKE3: repository ids, version 2 manifests); with ``--server``
    the command leaves hashlib alone."""
    run = ("import cli.front, cli.main, sys\n"
           "def stop(*a, **k):\n"
           "    raise SystemExit(0)\n"
           "cli.front.open_front = stop\n"
           "import cli.cmds_jobs\n"
           "cli.cmds_jobs.connect = stop\n"
           "try:\n"
           "    cli.main.app(ARGS, standalone_mode=False)\n"
           "except SystemExit:\n"
           "    pass\n")
    embedded = _run(run.replace("ARGS", "['backup', 'vol1', '--format', 'tar.zst']"))
    remote = _run(run.replace("ARGS", "['--server', 'http://127.0.0.1:9', 'backup', 'vol1']"))
    assert embedded[0] == "sha256" and embedded[3] == "False"
    assert remote[0] == "HASH"
