"""Looking things up inside a container rootfs without ever leaving it.

Everything here treats the rootfs as hostile: symlinks are resolved one
component at a time and re-rooted at the rootfs (an absolute target means "from
the container's /", never the host's), files are opened with O_NOFOLLOW and
checked to be regular, and sizes are bounded.  `/etc/passwd` and `/etc/group`
are parsed by hand: pwd/grp would consult the *host's* NSS (`read_db`, `parse_db`:
runtime/idnames.py reads other names with them: `--group-add`, an export's owners).

The user and command semantics copy what Docker 20.10 + runc 1.1 do
(libcontainer/user.GetExecUser, Go 1.19 exec.LookPath), including their error
texts, because users compare our output with docker's.
"""

from __future__ import annotations

import errno
import os
import stat

from lamina.errors import ContainerCommandNotExecutable, ContainerCommandNotFound, RuntimeFailure
from lamina.oci import DEFAULT_PATH  # noqa: F401 - spec.py and the tests take it from here
from lamina.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time that `run` does not have
    from typing import Callable, NoReturn, Sequence

MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS: the same budget the kernel gives a path walk
MAX_ID = 2**31 - 1  # runc's maxID; a larger uid/gid once wrapped to root (CVE-2024-40635)
MAX_DB_FILE = 4 << 20  # /etc/passwd, /etc/group: bigger than this is an attack, not a distro

RANGE_ERROR = f"uids and gids must be in range 0-{MAX_ID}"


def resolve_in_root(rootfs: str, path: str) -> str:
    """Host path of `path` as the container would see it, symlinks resolved inside `rootfs`.

    `..` never climbs above the root, absolute link targets restart at the root,
    and components that do not exist are kept literally (like securejoin), so the
    result is always `rootfs` or below it.  Raises OSError(ELOOP) after
    MAX_SYMLINKS links, RuntimeFailure for a path with a NUL byte (image configs
    can carry one).  The final component is resolved too: lstat() of the result
    is not a symlink unless the path does not exist.

    For read-only lookups (the user database, the command, the /proc check of
    the working directory): whatever lamina writes into a rootfs is resolved on
    directory fds by archive/inroot.py, which a concurrent rename cannot redirect.
    """
    root = rootfs.rstrip("/") or "/"
    return _join(root, _walk(path, lambda parts: _join(root, parts, None)), None)


class _MountView:
    """The container's files as runc leaves them: bind mounts over the rootfs.

    `binds` are (container destination, host source) in runc's mount order.
    `resolve` is resolve_in_root's walk on the container's own path: a component
    under a mount is looked up in the mount's source, and every symlink, wherever
    it lives, is still resolved in the container (`..` at a mount's top goes to
    the container's parent, an absolute target restarts at the container's /).
    """

    def __init__(self, rootfs: str, binds: Sequence[tuple[str, str]]) -> None:
        self.root = rootfs.rstrip("/") or "/"
        self.mounts: list[tuple[list[str], str]] = []
        for destination, source in binds:
            # Where runc puts it: the destination resolved in the view so far (securejoin).
            # The source is the user's own host path, so the host may resolve it.
            try:
                where = _walk(destination, self.host)
            except OSError as e:  # a link loop in the image: runc cannot mount there either
                raise RuntimeFailure(f"invalid mount destination {destination}: {e.strerror.lower()}") from None
            self.mounts.append((where, os.path.realpath(source)))

    def resolve(self, path: str) -> str:
        """Host path of the in-container `path` (OSError(ELOOP) after MAX_SYMLINKS links)."""
        return self.host(_walk(path, self.host))

    def host(self, parts: list[str]) -> str:
        # The last mount over a path is the visible one (it hides earlier mounts below it).
        for prefix, source in reversed(self.mounts):
            if parts[: len(prefix)] == prefix:
                return _join(source, parts[len(prefix) :], None)
        return _join(self.root, parts, None)


def _walk(path: str, host_of: Callable[[list[str]], str]) -> list[str]:
    """The resolved components of `path`; `host_of` maps components to the host path to lstat."""
    if "\0" in path:  # would be a ValueError from the first syscall
        raise RuntimeFailure(f"invalid path {_quote(path)}: it contains a NUL byte")
    resolved: list[str] = []
    pending = _components(path)
    pending.reverse()  # a stack: pop() takes the next component
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = host_of([*resolved, part])
        try:
            st = os.lstat(candidate)
        except OSError:
            # Missing (or under a non-directory): nothing more to follow; keep it literal.
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved.clear()
        parts = _components(target)
        parts.reverse()
        pending.extend(parts)
    return resolved


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def _join(root: str, parts: list[str], last: str | None) -> str:
    tail = "/".join(parts if last is None else [*parts, last])
    if not tail:
        return root
    return root + tail if root.endswith("/") else f"{root}/{tail}"


# --------------------------------------------------------------------------- users


@record
class UserIds:
    """What goes into config.json `process.user` (and the home dir, for callers that want it)."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


# One parsed line: (name, id, primary gid (passwd) or id (group), home, member names).
# A plain tuple, not a dataclass: class creation is import time on every start.
_Entry = tuple[str, int, int, str, tuple[str, ...]]


def lookup_user(rootfs: str, user_spec: str) -> UserIds:
    """Docker's `--user` / image `User` semantics, resolved against the image's own files.

    `name`, `uid`, `name:group`, `uid:gid`, `:gid`, `""` (root).  A numeric id
    without an entry is fine (and is always taken as an id, never a name).
    Supplementary groups come from /etc/group only when no group was given;
    like Docker ≥ 20.10.18 the primary gid is listed first (CVE-2022-36109).
    """
    user_arg, _, rest = user_spec.partition(":")
    group_arg = rest.split(":", 1)[0]  # Go's parseLine ignores further fields
    uid_arg = atoi(user_arg)
    gid_arg = atoi(group_arg)

    passwd = read_db(rootfs, "/etc/passwd", user_spec)
    uid, gid, home, matched = 0, 0, "/", ""
    entry = None
    if passwd is not None:
        for e in parse_db(passwd, group=False):
            name, e_uid = e[0], e[1]
            if (user_arg == "" and e_uid == 0) or (uid_arg is not None and e_uid == uid_arg) or (
                uid_arg is None and user_arg != "" and name == user_arg
            ):
                entry = e  # first match wins, as in libcontainer
                break
    if entry is not None:
        matched, uid, gid, home = entry[0], entry[1], entry[2], entry[3] or "/"
    elif user_arg != "":
        if uid_arg is None:
            raise RuntimeFailure(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = uid_arg

    sgids: list[int] = []
    if group_arg != "" or matched:
        groups = read_db(rootfs, "/etc/group", user_spec)
        found = []
        if groups is not None:
            for g_name, g_id, _, _, members in parse_db(groups, group=True):
                if group_arg == "":
                    hit = matched in members
                elif gid_arg is not None:
                    hit = g_id == gid_arg
                else:
                    hit = g_name == group_arg
                if hit:
                    found.append(g_id)
        if group_arg != "":
            if found:
                gid = found[0]
            elif gid_arg is None:
                raise RuntimeFailure(f"unable to find group {group_arg}: no matching entries in group file")
            else:
                gid = gid_arg
        else:
            sgids = found

    # Checked on the result so ids read from a hostile passwd file are covered too.
    for value in (uid, gid, *sgids):
        if not 0 <= value <= MAX_ID:
            raise RuntimeFailure(RANGE_ERROR)
    return UserIds(uid=uid, gid=gid, additional_gids=(gid, *sgids), home=home)


def atoi(text: str) -> int | None:
    """Go's strconv.Atoi as libcontainer uses it: a user or group that parses is an id,
    anything else (`1_000`, ` 7`, non-ASCII digits, past int64) a name.  The parse is
    lamina.strconv.parse_int's; only the answer differs: None, not an error."""
    from lamina.strconv import parse_int

    try:
        return parse_int(text, "Atoi")
    except ValueError:
        return None


def read_db(rootfs: str, path: str, user_spec: str) -> bytes | None:
    """Contents of an /etc database file, or None when the image has none.

    Like libcontainer, a file that cannot be opened counts as absent (then only
    numeric ids work); one that opens but is not a small regular file is an error.
    """
    from lamina.archive.inroot import InRoot, MissingPath, resolve_leaf

    try:  # opened relative to a directory fd walked inside the root: a running container
        tree = InRoot(rootfs)  # (export, cp) cannot swap /etc for a link to the host's
    except OSError:
        return None
    try:
        parent, name = resolve_leaf(tree, path, create=False)
        # O_NONBLOCK: a FIFO planted at /etc/passwd must not hang us.
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=tree.dir_fd(parent))
    except (OSError, MissingPath):
        return None
    finally:
        tree.close()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            _db_error(user_spec, path, "is not a regular file")
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 16):
            total += len(chunk)
            if total > MAX_DB_FILE:  # checked while reading: the size can change under us
                _db_error(user_spec, path, f"is larger than {MAX_DB_FILE >> 20} MiB")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _db_error(user_spec: str, path: str, why: str) -> NoReturn:
    raise RuntimeFailure(f"unable to find user {user_spec}: {path} in the image {why}")


def parse_db(data: bytes, *, group: bool) -> list[_Entry]:
    """passwd: name:pass:uid:gid:gecos:home:shell; group: name:pass:gid:member,member.

    A line whose numeric fields are not numbers is skipped: Go's parser would
    read them as 0, i.e. root, which we refuse to reproduce.
    """
    out = []
    for raw in data.split(b"\n"):
        line = raw.strip()
        if not line:
            continue
        f = line.decode("utf-8", "surrogateescape").split(":")
        f += [""] * (7 - len(f))
        if group:
            gid = atoi(f[2])
            if gid is None:
                continue
            members = tuple(m for m in f[3].split(",") if m)
            out.append((f[0], gid, gid, "", members))
        else:
            uid, gid = atoi(f[2]), atoi(f[3])
            if uid is None or gid is None:
                continue
            out.append((f[0], uid, gid, f[5], ()))
    return out


# --------------------------------------------------------------------------- executables


def find_executable(rootfs: str, argv0: str, path_env: str | None, cwd: str,
                    *, mounts: Sequence[tuple[str, str]] = ()) -> str:
    """The in-container path runc would exec for `argv0`, or the error it would report.

    Mirrors Go 1.19's exec.LookPath as run by runc inside the container: a name
    with a slash is stat'ed relative to `cwd`; otherwise $PATH is searched (empty
    element = "."), a candidate counts when it is a non-directory with any x bit,
    and a hit through a relative PATH element is refused (exec.ErrDot).  runc looks
    after the mounts are made, so `mounts` (the bind mounts: (destination, host
    source) in mount order) are part of what is searched.  Raising here lets the CLI fail fast,
    with docker's text and exit code, before runc runs.
    """
    view = _MountView(rootfs, mounts)  # the mounts are placed once, for every candidate
    if "/" in argv0:
        where = argv0 if argv0.startswith("/") else f"{cwd.rstrip('/')}/{argv0}"
        err = _check_executable(view, where)
        if err is None:
            return argv0
        if err == errno.EACCES:
            raise ContainerCommandNotExecutable(f"exec: {_quote(argv0)}: permission denied")
        _raise_for_stat(argv0, err)
    # Go's filepath.SplitList("") is empty: no PATH means nothing is found.
    for d in path_env.split(":") if path_env else ():
        candidate = _clean(f"{d or '.'}/{argv0}")
        where = candidate if candidate.startswith("/") else f"{cwd.rstrip('/')}/{candidate}"
        if _check_executable(view, where) is None:
            if not candidate.startswith("/"):
                raise RuntimeFailure(f"exec: {_quote(argv0)}: cannot run executable found relative to current directory")
            return candidate
    raise ContainerCommandNotFound(f"exec: {_quote(argv0)}: executable file not found in $PATH")


def _quote(text: str) -> str:
    """Go's %q, as docker's texts have it: an image's control bytes stay escaped.
    Imported here, on the error path only: the start path stays lean."""
    from lamina.quoting import go_quote

    return go_quote(text)


def _check_executable(view: _MountView, path: str) -> int | None:
    """None when `path` (in-container) is a runnable file, else the errno Go would report."""
    try:
        host = view.resolve(path)
        st = os.stat(host, follow_symlinks=False)
    except OSError as e:
        return e.errno or errno.ENOENT
    if stat.S_ISLNK(st.st_mode):  # resolution did not finish: a link to nowhere or a loop
        return errno.ENOENT
    if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
        return errno.EACCES
    return None


def _raise_for_stat(argv0: str, err: int) -> NoReturn:
    from lamina.quoting import escape_controls

    msg = f"exec: {_quote(argv0)}: stat {escape_controls(argv0)}: {os.strerror(err).lower()}"
    # Docker's translateContainerdStartErr: "no such file" -> 127, EACCES -> 126, else 125.
    if err == errno.ENOENT:
        raise ContainerCommandNotFound(msg)
    if err == errno.EACCES:
        raise ContainerCommandNotExecutable(msg)
    raise RuntimeFailure(msg)


def _clean(path: str) -> str:
    """Go's filepath.Join cleaning, lexically (this is an in-container path)."""
    absolute = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and out and out[-1] != "..":
            out.pop()
        elif part == ".." and absolute:
            continue
        else:
            out.append(part)
    joined = "/".join(out)
    return ("/" + joined) if absolute else (joined or ".")


def resolved_workdir_is_proc(rootfs: str, cwd: str) -> bool:
    """True when `cwd` lands in the container's /proc once its symlinks are followed.

    A lexical check of WorkingDir is not enough: an image can ship `/work -> /proc/self/fd/7`
    (CVE-2024-21626 needs only a cwd that reaches a leaked fd).
    """
    root = rootfs.rstrip("/")
    try:
        host = resolve_in_root(rootfs, cwd)
    except OSError:
        return False  # a loop: runc fails on it without our help
    rel = host[len(root):] or "/"
    return rel == "/proc" or rel.startswith("/proc/")
