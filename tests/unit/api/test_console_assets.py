"""The console's files as the API serves them: every module the shell loads (and every
module those import) is served from the package with its type, nothing else is, the shell
carries a Content-Security-Policy its own files satisfy (no inline script or style), and
pyproject's package-data ships them with a pip install. The pages themselves are tested in
a browser (tests/integration/api/test_console.py)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.unit.api.test_api import Env, _make
from tests.unit.api.test_auth import bare

CONSOLE = Path(__file__).resolve().parents[3] / "api" / "console"
ROOT = CONSOLE.parents[1]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def referenced(text: str) -> set[str]:
    """The console files a page or module names (``/console/x.js``, ``./x.js``)."""
    return set(re.findall(r"""["'](?:/console/|\./)([a-z][a-z0-9-]*\.(?:js|css))["']""", text))


def test_every_module_the_shell_loads_is_served_with_its_type(env: Env) -> None:
    wanted = referenced((CONSOLE / "index.html").read_text())
    seen: set[str] = set()
    with bare(env) as c:
        while wanted - seen:
            name = sorted(wanted - seen)[0]
            seen.add(name)
            r = c.get(f"/console/{name}")  # no login needed: no data in them
            assert r.status_code == 200, name
            kind = "text/javascript" if name.endswith(".js") else "text/css"
            assert r.headers["content-type"].startswith(kind)
            assert r.headers["x-content-type-options"] == "nosniff"
            wanted |= referenced(r.text)
    assert {"app.js", "api.js", "ui.js", "pages.js", "backups.js", "wizard.js",
            "console.css"} <= seen


@pytest.mark.parametrize("name", ["__init__.py", "index.html", "nope.js", "..%2Fdeps.py",
                                  "login.html", ".hidden.js"])
def test_nothing_but_the_console_files_is_served(env: Env, name: str) -> None:
    with bare(env) as c:
        assert c.get(f"/console/{name}").status_code == 404


def test_the_shell_has_a_strict_csp_and_no_inline_code(env: Env, tmp_path: Path) -> None:
    secret = (tmp_path / "api.token").read_text().strip()
    with bare(env) as c:
        c.post("/login", json={"token": secret}, headers={"Origin": "http://127.0.0.1:8470"})
        r = c.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp
    html = r.text
    assert "<style" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers


def test_pip_installs_the_console_files() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["*"]
    for f in CONSOLE.iterdir():
        if f.suffix in (".js", ".css", ".html"):
            assert any(fnmatch(f.name, p) for p in patterns), f.name
    assert not [d for d in CONSOLE.iterdir() if d.is_dir() and d.name != "__pycache__"], \
        "package-data globs match files directly in api/console only"


def test_an_unchanged_file_is_revalidated_with_a_304(env: Env) -> None:
    with bare(env) as c:
        first = c.get("/console/app.js")
        etag = first.headers["etag"]
        again = c.get("/console/app.js", headers={"If-None-Match": etag})
        other = c.get("/console/ui.js", headers={"If-None-Match": etag})
    assert first.headers["cache-control"] == "no-cache"
    assert again.status_code == 304 and again.content == b""
    assert other.status_code == 200 and other.headers["etag"] != etag
