""".dockerignore: reading the file and matching paths (moby/patternmatcher semantics).

Public API::

    find_ignore_file(context_dir, dockerfile_path=None) -> str | None
    read_ignore_file(text: str, source=".dockerignore") -> list[str]
    IgnoreMatcher(patterns, source=".dockerignore")
        .matches(relpath) -> bool        # is this context path excluded?
        .must_descend(reldir) -> bool    # must a walker enter this directory?
        .has_exceptions -> bool          # any `!pattern`
        .patterns -> tuple[Pattern, ...]
    go_clean(path) -> str                # Go's filepath.Clean

Paths are relative to the context root, '/'-separated.  A pattern matches the whole
path (`*.md` only hits root-level files); `*` and `?` never cross '/', `**` spans any
number of directories (including none), `[...]` is a character class and `\\` escapes.
A pattern that matches a directory excludes everything below it.  The *last* matching
pattern decides, and a `!pattern` can re-include files inside an excluded directory,
which is why a walker asks `must_descend` before skipping an excluded directory.
Malformed patterns raise BuildError, like `docker build` does.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import BuildError
from .shell import GO_SPACES

__all__ = ["IgnoreMatcher", "Pattern", "find_ignore_file", "go_clean", "read_ignore_file"]

_MAX_LINE_BYTES = 65535  # bufio.Scanner's limit, as for Dockerfiles


def find_ignore_file(context_dir: str, dockerfile_path: str | None = None) -> str | None:
    """The .dockerignore that applies (context.ignore_file_candidates' rule), or None."""
    from lamina.builder.context import ignore_file_candidates

    return next((p for p in ignore_file_candidates(context_dir, dockerfile_path) if os.path.isfile(p)), None)


def go_clean(path: str) -> str:
    """Go's filepath.Clean: collapse //, drop ., resolve .. lexically, no trailing /."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp != "..":
            parts.append(comp)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:
            parts.append("..")  # a rooted path cannot go above /
    cleaned = "/".join(parts)
    return "/" + cleaned if rooted else cleaned or "."


def read_ignore_file(text: str, source: str = ".dockerignore") -> list[str]:
    """The patterns of a .dockerignore file, normalised like moby's ignorefile.ReadAll."""
    patterns: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        if len(line.encode("utf-8", "surrogatepass")) > _MAX_LINE_BYTES:
            raise BuildError(f"{source}:{number}: line greater than max allowed size of {_MAX_LINE_BYTES}")
        line = line.removesuffix("\r")
        if number == 1:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):  # only a # in the first column starts a comment
            continue
        pattern = line.strip(GO_SPACES)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip(GO_SPACES)
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]  # "/foo" means foo at the context root
        patterns.append("!" + pattern if invert else pattern)
    return patterns


@dataclass(frozen=True)
class Pattern:
    text: str  # cleaned, without the leading !
    exclusion: bool  # a `!pattern`: re-includes what it matches
    kind: str  # "exact" | "prefix" (x/**) | "suffix" (**/x) | "regex"
    regex: re.Pattern[str] | None

    @property
    def dirs(self) -> list[str]:
        return self.text.split("/")

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


class IgnoreMatcher:
    def __init__(self, patterns: Iterable[str], source: str = ".dockerignore") -> None:
        compiled: list[Pattern] = []
        for raw in patterns:
            text = raw.strip(GO_SPACES)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if text == "!":
                    raise BuildError(f'{source}: illegal exclusion pattern: "!"')
                text = text[1:]
            if not _valid_glob(text):
                raise BuildError(f"{source}: syntax error in pattern: {text}")
            compiled.append(_compile(text, exclusion))
        self.patterns = tuple(compiled)
        self.has_exceptions = any(p.exclusion for p in compiled)

    def matches(self, relpath: str) -> bool:
        """Whether `relpath` is excluded: the last pattern matching it or one of its
        parent directories decides (patternmatcher's MatchesOrParentMatches)."""
        path = go_clean(relpath).lstrip("/")
        if path in ("", "."):
            return False  # the context root itself is never excluded
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # only an exclusion can undo a match, only a match can start one
            hit = pattern.match(path) or any(
                pattern.match("/".join(parents[: i + 1])) for i in range(len(parents))
            )
            if hit:
                matched = not pattern.exclusion
        return matched

    def must_descend(self, reldir: str) -> bool:
        """Whether a walker must enter directory `reldir`: it is not excluded, or some
        `!pattern` may re-include an entry below it.  Errs on the side of descending."""
        if not self.matches(reldir):
            return True
        path = go_clean(reldir).lstrip("/")
        parts = path.split("/")
        return any(p.exclusion and _may_match_below(p, parts) for p in self.patterns)


def _may_match_below(pattern: Pattern, dirs: list[str]) -> bool:
    pdirs = pattern.dirs
    for i, name in enumerate(dirs):
        if i >= len(pdirs) or "**" in pdirs[i]:
            return True  # matches an ancestor (re-including all below) or spans levels
        if not _compile(pdirs[i], False).match(name):
            return False
    return True  # the pattern is deeper than the directory: may name something inside


def _valid_glob(pattern: str) -> bool:
    """The syntax check of Go's filepath.Match: well-formed [classes] and no lone \\."""
    n = len(pattern)

    def class_char(i: int) -> int:  # getEsc: one (escaped) character; -1 if malformed
        if i >= n or pattern[i] in "-]":
            return -1
        if pattern[i] == "\\":
            i += 1
        return i + 1 if i + 1 < n else -1  # a class must still be closed after it

    i = 0
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "\\":
            if i >= n:
                return False
            i += 1
        elif ch == "[":
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while not (i < n and pattern[i] == "]" and ranges):
                i = class_char(i)
                if i >= 0 and pattern[i] == "-":
                    i = class_char(i + 1)
                if i < 0:
                    return False
                ranges += 1
            i += 1
    return True


_ESCAPED = frozenset(".+()|{}$")  # regex syntax that means nothing in filepath.Match


def _compile(text: str, exclusion: bool) -> Pattern:
    """patternmatcher's Pattern.compile: pick the cheapest kind of match."""
    out = ["^"]
    kind = "exact"
    i, n = 0, len(text)
    first = True
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*" and i < n and text[i] == "*":
            i += 1
            if i < n and text[i] == "/":
                i += 1  # **/ is the same as **
            if i >= n:  # trailing **: everything below
                if kind == "exact":
                    kind = "prefix"
                else:
                    out.append(".*")
                    kind = "regex"
            else:
                out.append("(.*/)?")
                kind = "regex"
            if first:
                kind = "suffix"
        elif ch == "*":
            out.append("[^/]*")
            kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                # Go's regexp would read `\d` as a digit class; filepath.Match (and we)
                # read an escaped character literally.
                out.append(re.escape(text[i]))
                i += 1
                kind = "regex"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regex"
        else:
            out.append(ch)  # like Go, raw: `^` and `-` keep their meaning inside [...]
        first = False
    regex = None
    if kind == "regex":
        with warnings.catch_warnings():  # "possible nested set" for classes like [[]
            warnings.simplefilter("ignore")
            try:
                regex = re.compile("".join(out) + r"\Z")
            except re.error:
                regex = re.compile(r"(?!)")  # a class Go accepts but Python cannot read
    return Pattern(text, exclusion, kind, regex)
