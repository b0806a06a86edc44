"""The build context: a directory the build reads COPY/ADD sources from, and nothing else.

Sources are context-relative paths.  A path that climbs out (`../x`) is refused;
wildcards follow Go's filepath.Match one component at a time (goglob.py); `.dockerignore`d
paths are invisible.

Every path is resolved inside the context root one component at a time with
no-follow opens (archive.inroot's dirfd walk), and content is read through the
fds that walk gives: a symlink in the middle of a source path is followed *inside*
the root (an absolute target restarts at the context root, `..` stops there), as
both of docker's builders do, so `link/passwd` with `link -> /etc` is the
context's own `etc/passwd` or "not found", never the host's.  Ignore rules apply
to what is really read (and to every link on the way), so `alias -> .` cannot
bring an ignored `secret.env` in as `alias/secret.env`.

The last component of a COPY source is not followed, with one Docker-compatible
exception: a link whose target stays inside the context (relative, no escape) is
copied as its target; any other link is copied as the link itself.  In a rootfs
(`COPY --from`, `in_root=True`) a last link is followed, re-rooted, instead.

Also here: reading the Dockerfile and the .dockerignore inside the context (for
the build and the memo's fast path); `-` contexts are stdincontext.py.
"""

from __future__ import annotations

import os
import re
import stat
from typing import NamedTuple

from lamina.archive.inroot import MAX_SYMLINKS, InRoot, MissingPath, clean, join
from lamina.builder.stdincontext import context_from_stream  # noqa: F401 - engine.build takes it from here
from lamina.errors import BuildError, InvalidArchive

_MAGIC = re.compile(r"[*?\[\\]")
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a swapped-in FIFO never hangs


class Source(NamedTuple):  # a tuple, not a dataclass: the memo's fast path imports this module
    """One matched source: its context-relative path and what to read it as."""

    rel: str          # "dir/file.txt" ("" = the context root), as written
    follow: str       # the real (symlink-free) path of the entry whose content is copied
    is_dir: bool


class BuildContext:
    """A source root.  `in_root=True` is a stage's or image's rootfs (`COPY --from`):
    there, a last link is followed (re-rooted) instead of copied as a link."""

    def __init__(self, root: str, ignore=None, *, in_root: bool = False) -> None:
        self.root = os.path.abspath(root)
        self.ignore = ignore  # dockerignore.IgnoreMatcher or None
        self.in_root = in_root
        self._tree: InRoot | None = None  # opened on first use; close() releases its fds
        # Below this depth no pattern can match by itself, so a walk (which never enters
        # an excluded dir unless a `!` pattern may re-include) need not ask the matcher.
        self._deepest = None
        if ignore and not ignore.has_exceptions and not any("**" in p.text for p in ignore.patterns):
            self._deepest = max((p.text.count("/") + 1 for p in ignore.patterns), default=0)

    def _fs(self) -> InRoot:
        if self._tree is None:
            try:
                self._tree = InRoot(self.root)
            except OSError as e:
                raise BuildError(f"cannot read build context: {e.strerror}") from None
        return self._tree

    def close(self) -> None:
        if self._tree is not None:
            self._tree.close()
            self._tree = None

    # ------------------------------------------------------------------ paths
    def host(self, rel: str) -> str:
        """The host path of a real path (for messages and bind mounts only: content is
        read through fds)."""
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
            src = self._source(rel)
            return [src] if src is not None else []
        out: list[Source] = []
        for hit in self._glob(rel.split("/"), ""):
            src = self._source(hit)
            if src is not None:
                out.append(src)
        return out

    def resolve(self, rel: str) -> Source | None:
        """`rel` with every link followed inside the root, the last one too (a bind
        mount source, the Dockerfile); None if it is missing, dangling or ignored."""
        found = self._find(rel)
        if found is None:
            return None
        real, st = found
        if stat.S_ISLNK(st.st_mode):
            found = self._follow(real, reroot=True)
            if found is None:
                return None
            real, st = found
        return Source(rel, real, stat.S_ISDIR(st.st_mode))

    def _glob(self, parts: list[str], base: str) -> list[str]:
        from lamina.builder.goglob import go_glob, unescape  # a wildcard's only

        head, rest = parts[0], parts[1:]
        if not _MAGIC.search(head):
            names = [unescape(head)]
        else:
            rx = go_glob(head)
            real = self._dir(base)
            if real is None:
                return []
            try:
                names = sorted(n for n in os.listdir(self._fs().dir_fd(real)) if rx.fullmatch(n))
            except OSError:
                return []
        out = []
        for name in names:
            rel = f"{base}/{name}" if base else name
            if not rest:
                out.append(rel)
            elif self._dir(rel) is not None:
                out += self._glob(rest, rel)
        return out

    def _dir(self, rel: str) -> str | None:
        """Real path of the directory `rel` (links followed inside the root), or None."""
        try:
            return self._fs().resolve(clean(rel), create=False, entry=rel)
        except (MissingPath, InvalidArchive, OSError):
            return None

    def _source(self, rel: str) -> Source | None:
        found = self._find(rel)
        if found is None:
            return None
        real, st = found
        if stat.S_ISLNK(st.st_mode):
            target = self._follow(real, reroot=self.in_root)
            if target is not None:
                return Source(rel, target[0], stat.S_ISDIR(target[1].st_mode))
            return Source(rel, real, False)  # copied as the link itself
        return Source(rel, real, stat.S_ISDIR(st.st_mode))

    def _find(self, rel: str) -> tuple[str, os.stat_result] | None:
        """(real path, lstat) of `rel`, every component but the last resolved inside
        the root; None if missing, not under a directory, or ignored (the entry or a
        link followed on the way)."""
        parts = clean(rel)
        fs = self._fs()
        if not parts:
            return "", os.fstat(fs.root_fd)
        links: list[str] = []
        try:
            parent = fs.resolve(parts[:-1], create=False, entry=rel, links=links)
            st = os.stat(parts[-1], dir_fd=fs.dir_fd(parent), follow_symlinks=False)
        except (MissingPath, InvalidArchive, OSError):
            return None
        real = join(parent, parts[-1])
        if self.ignored(real) or any(self.ignored(link) for link in links):
            return None
        return real, st

    def _follow(self, real: str, *, reroot: bool) -> tuple[str, os.stat_result] | None:
        """What the link at `real` names: (real path, lstat) of a non-link, or None if
        it dangles, loops or is ignored.  Without `reroot` (a context's last component)
        an absolute target or one that climbs out of the root is not followed either."""
        fs = self._fs()
        for _ in range(MAX_SYMLINKS):
            parent, _, name = real.rpartition("/")
            try:
                target = os.readlink(name, dir_fd=fs.dir_fd(parent))
            except OSError:
                return None
            if target.startswith("/"):
                if not reroot:
                    return None
                joined = target
            else:
                joined = f"{parent}/{target}" if parent else target
                if not reroot and _climbs_out(joined):
                    return None
            found = self._find(joined)
            if found is None:
                return None
            real, st = found
            if not stat.S_ISLNK(st.st_mode):
                return real, st
        return None

    # ------------------------------------------------------------------ reading
    def lstat(self, rel: str) -> os.stat_result:
        """lstat of the real path `rel`, through the directory fds."""
        fs = self._fs()
        if not rel:
            return os.fstat(fs.root_fd)
        parent, _, name = rel.rpartition("/")
        return os.stat(name, dir_fd=fs.dir_fd(parent), follow_symlinks=False)

    def readlink(self, rel: str) -> str:
        parent, _, name = rel.rpartition("/")
        return os.readlink(name, dir_fd=self._fs().dir_fd(parent))

    def open_file(self, rel: str) -> int:
        """An fd of the regular file at real path `rel`, opened with no-follow from its
        directory's fd; what it reads is what a hash of it must cover."""
        return self.open_regular(rel)[0]

    def open_regular(self, rel: str) -> tuple[int, os.stat_result]:
        """open_file's fd and its fstat (what a copy describes the file as)."""
        parent, _, name = rel.rpartition("/")
        fd = os.open(name, _READ, dir_fd=self._fs().dir_fd(parent))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise BuildError(f"{rel}: not a regular file any more (the build context changed)")
        return fd, st

    def read_bytes(self, rel: str, limit: int) -> bytes | None:
        """Up to `limit` bytes of the file `rel` (links followed inside the root); None
        if there is no such regular file in the context."""
        src = self.resolve(rel)
        if src is None or src.is_dir:
            return None
        try:
            fd = self.open_file(src.follow)
        except (OSError, BuildError):
            return None
        try:
            chunks, left = [], limit
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ walking
    def hides(self, rel: str) -> bool:
        """Whether .dockerignore excludes anything below the real directory `rel` (a
        bind mount of it would show what docker never sends)."""
        if not self.ignore:
            return False
        stack = [rel]
        while stack:
            top = stack.pop()
            try:
                with os.scandir(self._fs().dir_fd(top)) as it:
                    entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            except OSError as e:
                raise BuildError(f"cannot read build context {top or '.'}: {e.strerror}") from None
            for name, is_dir in entries:
                child = join(top, name)
                if self.ignored(child):
                    return True
                if is_dir:
                    stack.append(child)
        return False

    def walk(self, rel: str):
        """(rel, lstat) of the real path `rel` and everything below it, parents first,
        ignored entries skipped (descending where a `!` exception may re-include)."""
        try:
            st = self.lstat(rel)
        except OSError as e:
            raise BuildError(f"cannot read build context {rel or '.'}: {e.strerror}") from None
        yield rel, st
        if stat.S_ISDIR(st.st_mode):
            yield from self._walk_dir(rel)

    def _walk_dir(self, rel: str):
        try:
            with os.scandir(self._fs().dir_fd(rel)) as it:
                entries = sorted(((e.name, e.stat(follow_symlinks=False)) for e in it), key=lambda e: e[0])
        except OSError as e:
            raise BuildError(f"cannot read build context {rel or '.'}: {e.strerror}") from None
        deep = self._deepest is not None and rel.count("/") + 1 >= self._deepest and rel != ""
        for name, st in entries:
            child = f"{rel}/{name}" if rel else name
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


def _climbs_out(path: str) -> bool:
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


# --------------------------------------------------------------------- the Dockerfile, .dockerignore


def read_in_context(context_dir: str, path: str, limit: int) -> bytes | None:
    """Up to `limit` bytes of the file `path`.  Inside the context it is resolved in
    the context root like a COPY source (as the daemon does: a `Dockerfile` link to a
    host file is "not there"), so None when the context holds no such file; a path
    outside the context (`-f /elsewhere/Dockerfile`) is the user's own choice and is
    read as given."""
    root = os.path.abspath(context_dir)
    rel = os.path.relpath(os.path.abspath(path), root)
    if rel == ".." or rel.startswith("../"):
        try:
            fd = os.open(path, _READ & ~os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(limit) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    ctx = BuildContext(root)
    try:
        return ctx.read_bytes("" if rel == "." else rel, limit)
    finally:
        ctx.close()


def ignore_file_candidates(context_dir: str, dockerfile_path: str | None = None) -> list[str]:
    """Where the .dockerignore may be, best first: `<Dockerfile>.dockerignore` next to
    the Dockerfile wins over `<context>/.dockerignore`."""
    candidates = [os.path.join(context_dir, ".dockerignore")]
    if dockerfile_path and dockerfile_path != "-":
        candidates.insert(0, dockerfile_path + ".dockerignore")
    return candidates


def read_ignore_file_in_context(context_dir: str, dockerfile_path: str | None, limit: int) -> tuple[str, bytes] | None:
    """(path, content) of the .dockerignore that applies.  Read inside the context like
    the Dockerfile; one that is a link leading out of the context is an error, not "no
    ignore file" (that would send what it excludes).  Kept here, not in dockerignore.py,
    so the build memo's fast path can use it without importing the matcher."""
    for path in ignore_file_candidates(context_dir, dockerfile_path):
        if not os.path.lexists(path):
            continue
        data = read_in_context(context_dir, path, limit)
        if data is not None:
            return path, data
        if os.path.islink(path):
            raise BuildError(f"{os.path.basename(path)}: a symlink that leads out of the build context is not read")
    return None
