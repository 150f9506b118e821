"""The format seam: names defined once, each name mapped to its ``Format``, and no code
outside the seam deciding by a format's name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.archive import FORMATS as CODEC_FORMATS
from common.engine.formats import ArchiveFormat, RepositoryFormat, format_for, format_of
from common.engine.records import StoredBackup
from common.errors import InvalidInput
from common.formats import ARCHIVE_FORMATS, FORMATS, REPO_FORMAT, traits_of
from common.jobs import names

ROOT = Path(__file__).resolve().parents[3]  # the repository (tests/unit/engine/…)
#: the seam itself, and where the names are defined
ALLOWED = {"common/formats.py", "common/engine/formats/__init__.py"}
BRANCH = re.compile(r"""(==|!=|\bin)\s*(REPO_FORMAT|ARCHIVE_FORMATS|["']repo["'])|"""
                    r"""\.format\s*(==|!=)(?!\s*\w+\.format\b)""")  # a column = a column: no branch


def test_every_format_name_has_its_format_and_traits() -> None:
    assert (*ARCHIVE_FORMATS, REPO_FORMAT) == FORMATS
    assert CODEC_FORMATS == ARCHIVE_FORMATS and names.FORMATS == FORMATS
    for name in ARCHIVE_FORMATS:
        fmt = format_for(name)
        assert isinstance(fmt, ArchiveFormat) and fmt.name == name
        assert fmt.traits.archive and not fmt.traits.subset_verify
    repo = format_for(REPO_FORMAT)
    assert isinstance(repo, RepositoryFormat) and repo.traits.labels_in_storage
    backup = StoredBackup(id="b", key="k", manifest_key="", format="repo", checksum="",
                          logical_bytes=0, file_count=0, volume="v", host="h",
                          snapshot_id="ab" * 32)
    assert format_of(backup) is repo


def test_an_unknown_format_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"tar\.zst, repo"):
        format_for("zip")
    with pytest.raises(InvalidInput, match="unknown format 'zip'"):
        traits_of("zip")


def test_no_code_outside_the_seam_branches_on_a_format_name() -> None:
    found = []
    for package in ("api", "cli", "workers", "common"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ALLOWED:
                continue
            for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if BRANCH.search(line):
                    found.append(f"{rel}:{no}: {line.strip()}")
    assert found == [], "decide through common.engine.formats or common.formats traits"


def test_an_archive_format_loads_no_repository_code() -> None:
    """A ``tar.zst`` backup or restore does without ``common.repository`` (~60 modules,
    cryptography, the chunker): the repository format loads with the first ``repo``
    backup, and the archive format's browse and read-files helpers with their first use."""
    import subprocess
    import sys

    code = ("import sys; from common.engine.formats import format_for; "
            "from common.engine import restore; from common.jobs import volume_jobs; "
            "from common.jobs.context import target_settings; "
            "heavy = lambda: sorted(m for m in sys.modules if m.startswith(("
            "'common.repository.core.keys', 'common.engine.repo', 'cryptography', "
            "'common.engine.browse', 'common.engine.formats.repository'))); "
            "format_for('tar.zst'); before = heavy(); format_for('repo'); "
            "print(before, 'common.engine.formats.repository' in heavy())")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "True"]


def test_the_guard_reads_the_product() -> None:
    """The scan above looks at the product's files (it once looked under tests/ and
    passed whatever the code did)."""
    assert (ROOT / "common" / "formats.py").is_file()
    assert sum(1 for _ in (ROOT / "common").rglob("*.py")) > 100


def test_is_archive() -> None:
    from common.formats import is_archive

    assert [is_archive(n) for n in (*ARCHIVE_FORMATS, REPO_FORMAT)] == [True] * 3 + [False]
    assert not is_archive(None) and not is_archive("zip") and not is_archive("")
