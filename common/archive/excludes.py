"""Exclude patterns: which paths of a volume a backup leaves out.

One matcher for every way a backup reads a volume (GNU tar over the mountpoint, given
the paths ``excluded_paths`` finds; ``tarfilter`` over a tar stream from Docker's archive
API; the repository's directory walk and tar ingest), so every format stores the same set
of paths. Patterns are globs over volume-relative paths, like a
small ``.gitignore``:

- a pattern without ``/`` (``*.tmp``, ``cache``) matches a name at any depth;
- a pattern with ``/`` (``cache/**``, ``logs/*.log``, ``/top``) matches from the volume
  root (a leading ``/`` only anchors);
- ``*`` and ``?`` and ``[abc]`` never match ``/``; ``**`` as a whole component matches
  any number of components (``a/**/z``, ``cache/**``: everything below ``cache``);
- a trailing ``/`` (``tmp/``) matches directories only;
- an excluded directory is left out with everything below it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from common.errors import InvalidInput

MAX_PATTERNS = 1000


def _component(glob: str) -> str:
    """The regex of one path component's glob (``*``, ``?``, ``[...]``; no ``/``)."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 2 if glob[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = glob[i + 1:end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\").replace("/", "") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Rule:
    pattern: str
    regex: re.Pattern[str]
    dirs_only: bool


def _rule(pattern: str) -> _Rule:
    text = pattern.strip()
    dirs_only = text.endswith("/")
    body = text.strip("/")
    if not body or "\x00" in body or any(p in (".", "..") for p in body.split("/")):
        raise InvalidInput(f"invalid exclude pattern {pattern!r}",
                           "use a glob relative to the volume root such as '*.tmp' or "
                           "'cache/**' (no '..' or '.' components)")
    parts = [p for p in body.split("/") if p]
    anchored = text.startswith("/") or len(parts) > 1
    rx = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            rx += ".*" if last else "(?:[^/]+/)*"
        else:
            rx += _component(part) + ("" if last else "/")
    if not anchored:
        rx = "(?:.*/)?" + rx
    return _Rule(pattern, re.compile(rx + r"\Z", re.DOTALL), dirs_only)


@dataclass(frozen=True)
class Excludes:
    """A set of exclude patterns (empty: nothing is excluded)."""

    patterns: tuple[str, ...] = ()
    _rules: tuple[_Rule, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def of(cls, patterns: Iterable[str]) -> Excludes:
        """Patterns cleaned, deduplicated (first one wins), validated (InvalidInput). A
        pattern starting with ``#`` is a pattern like any other (``#*#``: editors' autosave
        files): only a ``.volkeeperignore`` has comment lines (``parse_ignore_file``)."""
        seen: dict[str, None] = {}
        for p in patterns:
            text = p.strip()
            if text:
                seen.setdefault(text, None)
        if len(seen) > MAX_PATTERNS:
            raise InvalidInput(f"{len(seen)} exclude patterns", f"use at most {MAX_PATTERNS}")
        rules = tuple(_rule(p) for p in seen)
        return cls(tuple(seen), rules)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, rel: str, is_dir: bool) -> bool:
        """Whether the volume-relative path ``rel`` (``a/b``) itself is excluded (its
        parents are the caller's business: a walk never enters an excluded directory)."""
        return any((is_dir or not r.dirs_only) and r.regex.match(rel) for r in self._rules)


NO_EXCLUDES = Excludes()


def parse_ignore_file(text: str) -> list[str]:
    """The patterns of a ``.volkeeperignore``: one a line, ``#`` starts a comment line;
    ``\\#`` starts a pattern beginning with ``#`` (as in ``.gitignore``)."""
    out = []
    for line in text.splitlines():
        pattern = line.strip()
        if pattern and not pattern.startswith("#"):
            out.append(pattern[1:] if pattern.startswith("\\#") else pattern)
    return out


def excluded_paths(root: str | os.PathLike[str], excludes: Excludes) -> Iterator[str]:
    """The volume-relative paths below ``root`` that ``excludes`` leaves out (an excluded
    directory once, not what is below it), walking without following symlinks."""
    if not excludes:
        return
    stack = [""]
    base = os.fspath(root)
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(base, rel_dir) if rel_dir else base) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            try:
                is_dir = stat.S_ISDIR(e.stat(follow_symlinks=False).st_mode)
            except FileNotFoundError:
                continue
            if excludes.matches(rel, is_dir):
                yield rel
            elif is_dir:
                stack.append(rel)
