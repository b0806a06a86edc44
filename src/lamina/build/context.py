"""The build context: a directory the build reads COPY/ADD sources from, and nothing else.

Sources are context-relative paths.  A path that climbs out (`../x`) is refused;
wildcards follow Go's filepath.Match one component at a time; `.dockerignore`d
paths are invisible.  Symlinks inside the context are never followed to read
content, with one Docker-compatible exception: a top-level source that is a link
whose target stays inside the context (relative, no escape) is copied as its
target.  A link that points anywhere else is copied as the link itself.

`-` contexts (a tar or a bare Dockerfile on stdin) are unpacked into the store's
tmp dir as `build-<pid>-…`, which recovery removes if we die.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import BinaryIO

from lamina.errors import BuildError

_MAGIC = re.compile(r"[*?\[\\]")


@dataclass(frozen=True)
class Source:
    """One matched source: its context-relative path and what to read it as."""

    rel: str          # "dir/file.txt" ("" = the context root)
    follow: str       # rel of the entry whose content is copied (== rel unless a followed link)
    is_dir: bool


class BuildContext:
    """A source root.  `in_root=True` is a stage's or image's rootfs (`COPY --from`):
    there, links are resolved inside the root (re-rooted) instead of refused."""

    def __init__(self, root: str, ignore=None, *, in_root: bool = False) -> None:
        self.root = os.path.abspath(root)
        self.ignore = ignore  # dockerignore.IgnoreMatcher or None
        self.in_root = in_root
        # Below this depth no pattern can match by itself, so a walk (which never enters
        # an excluded dir unless a `!` pattern may re-include) need not ask the matcher.
        self._deepest = None
        if ignore and not ignore.has_exceptions and not any("**" in p.text for p in ignore.patterns):
            self._deepest = max((p.text.count("/") + 1 for p in ignore.patterns), default=0)

    def _real(self, rel: str) -> str:
        """In a rootfs: the symlink-free relative path of `rel`'s parent + its last part."""
        if not self.in_root or not rel:
            return rel
        from lamina.runtime.rootfs import resolve_in_root

        parent, _, last = rel.rpartition("/")
        host = resolve_in_root(self.root, parent) if parent else self.root
        real_parent = os.path.relpath(host, self.root)
        real_parent = "" if real_parent == "." else real_parent
        return f"{real_parent}/{last}" if real_parent else last

    # ------------------------------------------------------------------ paths
    def host(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def ignored(self, rel: str) -> bool:
        return bool(self.ignore) and bool(rel) and self.ignore.matches(rel)

    @staticmethod
    def clean(pattern: str) -> str:
        """Context-relative form of a COPY source; `..` above the root is an error."""
        parts: list[str] = []
        for part in pattern.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise BuildError(f"forbidden path outside the build context: {pattern}")
                parts.pop()
            else:
                parts.append(part)
        return "/".join(parts)

    def match(self, pattern: str) -> list[Source]:
        """Sources for one COPY/ADD source pattern; [] when nothing matches."""
        rel = self.clean(pattern)
        if not _MAGIC.search(rel):
            src = self._source(self._real(rel))
            return [src] if src is not None else []
        out: list[Source] = []
        for hit in self._glob(rel.split("/"), ""):
            src = self._source(self._real(hit))
            if src is not None:
                out.append(src)
        return out

    def _glob(self, parts: list[str], base: str) -> list[str]:
        head, rest = parts[0], parts[1:]
        if not _MAGIC.search(head):
            names = [_unescape(head)]
        else:
            rx = go_glob(head)
            try:
                names = sorted(n for n in os.listdir(self.host(base)) if rx.fullmatch(n))
            except OSError:
                return []
        out = []
        for name in names:
            rel = f"{base}/{name}" if base else name
            if not rest:
                out.append(rel)
                continue
            if self.in_root:
                rel = self._real(rel + "/x")[:-2]  # follow a link to a dir inside the root
            try:
                if stat.S_ISDIR(os.lstat(self.host(rel)).st_mode):
                    out += self._glob(rest, rel)
            except OSError:
                continue
        return out

    def _source(self, rel: str) -> Source | None:
        if self.ignored(rel):
            return None
        try:
            st = os.lstat(self.host(rel))
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            target = self._follow_in_root(rel) if self.in_root else self._follow_inside(rel)
            if target is not None:
                tst = os.lstat(self.host(target))
                return Source(rel, target, stat.S_ISDIR(tst.st_mode))
            return Source(rel, rel, False)
        return Source(rel, rel, stat.S_ISDIR(st.st_mode))

    def _follow_in_root(self, rel: str) -> str | None:
        from lamina.runtime.rootfs import resolve_in_root

        try:
            host = resolve_in_root(self.root, rel)
        except OSError:
            return None
        if not os.path.lexists(host) or os.path.islink(host):
            return None
        real = os.path.relpath(host, self.root)
        return "" if real == "." else real

    def _follow_inside(self, rel: str) -> str | None:
        """Resolve a top-level link inside the context; None if it leaves it or dangles."""
        current = rel
        for _ in range(40):
            target = os.readlink(self.host(current))
            if target.startswith("/"):
                return None
            parts = current.split("/")[:-1]
            for part in target.split("/"):
                if part in ("", "."):
                    continue
                if part == "..":
                    if not parts:
                        return None
                    parts.pop()
                else:
                    parts.append(part)
            current = "/".join(parts)
            # every intermediate component must be a real directory (no nested links)
            for i in range(1, len(parts)):
                if not os.path.isdir(self.host("/".join(parts[:i]))) or os.path.islink(self.host("/".join(parts[:i]))):
                    return None
            try:
                st = os.lstat(self.host(current))
            except OSError:
                return None
            if self.ignored(current):
                return None
            if not stat.S_ISLNK(st.st_mode):
                return current
        return None

    # ------------------------------------------------------------------ walking
    def walk(self, rel: str):
        """(rel, lstat) of `rel` and everything below it, parents first, ignored
        entries skipped (descending where a `!` exception may re-include)."""
        top = self.host(rel)
        st = os.lstat(top)
        yield rel, st
        if stat.S_ISDIR(st.st_mode):
            yield from self._walk_dir(rel)

    def _walk_dir(self, rel: str):
        try:
            with os.scandir(self.host(rel)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise BuildError(f"cannot read build context {rel or '.'}: {e.strerror}") from None
        deep = self._deepest is not None and rel.count("/") + 1 >= self._deepest and rel != ""
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if not deep and self.ignored(child):
                if is_dir and self.ignore.must_descend(child):
                    yield from self._walk_dir_filtered(child)
                continue
            yield child, st
            if is_dir:
                yield from self._walk_dir(child)

    def _walk_dir_filtered(self, rel: str):
        """Inside an excluded dir: only re-included entries (with their parents) come out."""
        for child, st in self._walk_dir(rel):
            yield child, st


def go_glob(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match for one path component, as a regex."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise BuildError(f"syntax error in pattern: {pattern}")
            body = pattern[i:j]
            if body.startswith("^"):
                body = "^" + body[1:].replace("\\", "\\\\")
            else:
                body = body.replace("\\", "\\\\")
            out.append(f"[{body}]")
            i = j + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.S)


def _unescape(part: str) -> str:
    return re.sub(r"\\(.)", r"\1", part)


# --------------------------------------------------------------------- stdin contexts


def context_from_stream(stream: BinaryIO, tmp_dir: str) -> tuple[str, str | None]:
    """Unpack a context tar (any compression) or take a bare Dockerfile from `stream`.

    Returns (directory, dockerfile_text or None).  The directory lives in the store's
    tmp dir as `build-<pid>-…`; the caller removes it."""
    import tempfile

    from lamina.archive.compression import open_stream

    work = tempfile.mkdtemp(dir=tmp_dir, prefix=f"build-{os.getpid()}-")
    raw = open_stream(stream)
    head = raw.read(512)
    if len(head) == 512 and _is_tar_header(head):
        from lamina.archive.extract import apply_layer

        apply_layer(_Rewound(head, raw), work, overlay_whiteouts=False)
        return work, None
    rest = raw.read(4 << 20)
    if raw.read(1):
        raise BuildError("Dockerfile from stdin is larger than 4 MiB")
    try:
        return work, (head + rest).decode("utf-8")
    except UnicodeDecodeError:
        raise BuildError("stdin is neither a tar archive nor a UTF-8 Dockerfile") from None


def _is_tar_header(block: bytes) -> bool:
    """A ustar/gnu magic, or a valid header checksum (v7 tars)."""
    if block[257:262] == b"ustar":
        return True
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


class _Rewound:
    def __init__(self, head: bytes, f: BinaryIO) -> None:
        self._head = head
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._f.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._f.read(n)
