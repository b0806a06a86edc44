"""`cp`: docker cp, files between a container and the local filesystem.

docker's CLI decides the copy (docker/cli cp.go and moby's pkg/archive/copy.go):
where the tar is extracted and what its top entry is renamed to, from what the
source is (file or directory, `/.` for its contents) and what the destination is
(an existing directory: copied into; an existing file; missing, its parent
existing).  The container's side is engine/archive.py, the Engine API's own code:
its reads and writes stay inside the container's root while it runs.  The local
side is written with the same fd-based tar writer and confined extractor, as the
user running the command (moby's NoLchown).  Paths follow Go's filepath rules.
"""

from __future__ import annotations

import os
import posixpath

from lamina.errors import DAEMON_PREFIX

_LINK_BIT = 1 << 27  # Go's os.ModeSymlink in the stat document
_DIR_BIT = 1 << 31
_DEVICE_BIT, _IRREGULAR_BIT = 1 << 26, 1 << 19


def add_parsers(sub) -> None:
    p = sub.add_parser("cp", help="Copy files/folders between a container and the local filesystem",
                       usage="[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
                             "\tlamina cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH")
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="Suppress progress output during copy. Progress output is automatically suppressed "
                        "if no terminal is attached")
    p.add_argument("source", metavar="SRC_PATH")
    p.add_argument("destination", metavar="DEST_PATH")
    # dockerd's refusals carry its prefix; the CLI's own checks are bare; a 404 on the
    # upload is the client's `Error: No such container:path: …`
    p.set_defaults(func=cmd_cp, error_prefix=DAEMON_PREFIX, error_verbatim=("Error: ",))


def cmd_cp(system, args) -> int:
    from lamina.errors import UsageError

    src_ctr, src = _split_arg(args.source)
    dst_ctr, dst = _split_arg(args.destination)
    if src_ctr and dst_ctr:
        raise UsageError("copying between containers is not supported")
    if src_ctr:
        copied, where = _from_container(system, src_ctr, src, dst, args.follow_link)
    elif dst_ctr:
        copied, where = _to_container(system, dst_ctr, src, dst, args.follow_link, args.archive)
    else:
        raise UsageError("must specify at least one container source")
    if where is not None and not args.quiet and os.isatty(2):  # docker 23+'s summary, on a terminal only
        from lamina.units import human_size

        os.write(2, f"Successfully copied {human_size(copied, 3)} to {where}\n".encode())
    return 0


def _split_arg(arg: str) -> tuple[str, str]:
    """(container, path): `CONTAINER:PATH`; a local path when absolute, without `:`
    or starting with `.` (`./file:name`)."""
    if arg.startswith("/"):
        return "", arg
    head, colon, tail = arg.partition(":")
    if not colon or head.startswith("."):
        return "", arg
    return head, tail


# ---------------------------------------------------------------------- Go's path rules


def _clean(path: str) -> str:
    """filepath.Clean."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _base(path: str) -> str:
    """filepath.Base."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


def _is_current_dir(path: str) -> bool:
    return _base(path) == "."


def _asserts_dir(path: str) -> bool:
    return path.endswith("/") or _is_current_dir(path)


def _preserve(cleaned: str, original: str) -> str:
    """archive.PreserveTrailingDotOrSeparator: the `/` or `/.` the user wrote means something."""
    if not _is_current_dir(cleaned) and _is_current_dir(original):
        cleaned += ("" if cleaned.endswith("/") else "/") + "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def _split_dir_entry(path: str) -> tuple[str, str]:
    """archive.SplitPathDirEntry: (parent, entry), `.` kept as the entry of `dir/.`."""
    cleaned = _clean(path)
    if _is_current_dir(path):
        cleaned += "/."
    return _clean(posixpath.dirname(cleaned) or "."), _base(cleaned)


def _rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """archive.GetRebaseName: the resolved path, and the name the entries keep when
    following a link changed the last element."""
    if _is_current_dir(path) and not _is_current_dir(resolved):
        resolved += "/."
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved, (_base(path) if _base(path) != _base(resolved) else "")


def _local(path: str) -> str:
    """resolveLocalPath: absolute, keeping a trailing `/` or `/.`."""
    return _preserve(os.path.abspath(path), path)


def _go_error(e: OSError, op: str = "lstat"):
    from lamina.errors import UsageError

    text = os.strerror(e.errno).lower() if e.errno else str(e)
    return UsageError(f"{op} {e.filename}: {text}" if e.filename else text)


# ---------------------------------------------------------------------- the copy decision


def _prepare(src_is_dir: bool, src_name: str, dst: str, exists: bool, is_dir: bool) -> tuple[str, str]:
    """archive.PrepareArchiveCopy: (directory to extract in, name of the top entry)."""
    from lamina.errors import UsageError

    dst_dir, dst_base = _split_dir_entry(dst)
    if exists and is_dir:
        return dst, src_name  # copied into it, under its own name
    if exists and src_is_dir:
        raise UsageError("cannot copy directory")
    if not exists and not src_is_dir and _asserts_dir(dst):
        raise UsageError("no such directory")
    return dst_dir, dst_base  # made (or replaced) under the destination's name


def _pipe(write, read, *, thread_reads: bool) -> int:
    """write(out) and read(in) over a pipe, the local side in a thread (the engine's
    side keeps the calling thread: the store's database belongs to it); the bytes
    that went through.  The first failure wins: the other side then only sees a
    closed pipe or a cut stream."""
    import threading

    r, w = os.pipe()
    out, inp = os.fdopen(w, "wb"), _Counting(os.fdopen(r, "rb"))
    failures: list[BaseException] = []

    def run(fn, f) -> None:
        try:
            fn(f)
        except BrokenPipeError:
            pass  # the reader gave up: its own error says why
        except BaseException as e:  # noqa: BLE001 - raised below, in the calling thread
            failures.append(e)
        finally:
            try:
                f.close()
            except BrokenPipeError:
                pass

    sides = [(write, out), (read, inp)]
    if thread_reads:
        sides.reverse()
    thread = threading.Thread(target=run, args=sides[0], name="lamina-cp", daemon=True)
    thread.start()
    run(*sides[1])
    thread.join()
    if failures:
        raise failures[0]
    return inp.count


class _Counting:
    def __init__(self, f) -> None:
        self.f, self.count = f, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.count += len(data)
        return data

    def close(self) -> None:
        self.f.close()


# ---------------------------------------------------------------------- container -> local


def _from_container(system, ctr: str, src: str, dst: str, follow: bool):
    import sys

    from lamina.archive.extract import apply_layer
    from lamina.engine.archive import get_archive, stat_path
    from lamina.errors import LaminaError, NotFound, UsageError

    if dst != "-":
        dst = _local(dst)
        _validate_output(dst)
    rebase = ""
    if follow:
        try:
            st = stat_path(system, ctr, src)
        except LaminaError:
            st = None  # the copy below reports it
        if st is not None and st["mode"] & _LINK_BIT:
            target = st["linkTarget"]
            if not target.startswith("/"):
                target = posixpath.join(_split_dir_entry(src)[0], target)
            src, rebase = _rebase_name(src, target)
    try:
        if dst == "-":
            sys.stdout.flush()
            out = sys.stdout.buffer
            get_archive(system, ctr, src, lambda st: out)
            out.flush()
            return 0, None
        st = stat_path(system, ctr, src)
    except NotFound:
        raise _no_such_path(ctr, src) from None
    exists, is_dir, dst = _local_destination(dst)
    dst_dir, arcname = _prepare(bool(st["mode"] & _DIR_BIT), rebase or st["name"], dst, exists, is_dir)

    def extract(stream) -> None:
        try:
            apply_layer(stream, dst_dir, overlay_whiteouts=False, plain=True, owners=False,
                        no_overwrite_dir_non_dir=True)
        except LaminaError as e:  # the CLI's own extraction: its words, bare
            raise UsageError(str(e)) from None

    copied = _pipe(lambda out: get_archive(system, ctr, src, lambda st: out, arcname=arcname), extract,
                   thread_reads=True)
    return copied, dst


def _no_such_path(ctr: str, path: str):
    """docker 20.10's client turns the daemon's 404 for a copy into this text."""
    from lamina.errors import NotFound

    return NotFound(f"Error: No such container:path: {ctr}:{path}")


def _validate_output(path: str) -> None:
    """command.ValidateOutputPath: the parent must exist; an existing destination is a
    directory or a regular file."""
    import stat

    from lamina.errors import UsageError

    parent = posixpath.dirname(_clean(path))
    if parent and parent != "." and not os.path.exists(parent):
        raise UsageError(f'invalid output path: directory "{parent}" does not exist')
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise _go_error(e, "stat") from None
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):  # Go's ValidateOutputPathFileMode: fifos and sockets pass
        raise UsageError(f'invalid output path: "{path}" must be a directory or a regular file: got a device')


def _local_destination(path: str) -> tuple[bool, bool, str]:
    """archive.CopyInfoDestinationPath: (exists, is a directory, path), a link at the
    destination followed (a dangling one names what is to be made); when missing,
    its parent must be a directory."""
    import stat

    from lamina.errors import UsageError

    original = path
    for _ in range(12):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            break
        except OSError as e:
            raise _go_error(e) from None
        if not stat.S_ISLNK(st.st_mode):
            return True, stat.S_ISDIR(st.st_mode), path
        target = os.readlink(path)
        path = target if target.startswith("/") else _clean(posixpath.join(_split_dir_entry(path)[0], target))
    else:
        raise UsageError(f"too many symlinks in {original}")
    parent = _split_dir_entry(path)[0]
    try:
        if not stat.S_ISDIR(os.stat(parent).st_mode):
            raise UsageError("not a directory")
    except OSError as e:
        raise _go_error(e, "stat") from None
    return False, False, path


# ---------------------------------------------------------------------- local -> container


def _to_container(system, ctr: str, src: str, dst: str, follow: bool, archive: bool):
    import sys

    from lamina.engine.archive import put_archive, stat_path
    from lamina.errors import LaminaError, NotFound, UsageError

    dst_path = dst
    try:
        st = stat_path(system, ctr, dst)
        if st["mode"] & _LINK_BIT:  # a link at the destination is written through, inside the container
            target = st["linkTarget"]
            dst_path = target if target.startswith("/") else posixpath.join(_split_dir_entry(dst)[0], target)
            st = stat_path(system, ctr, dst_path)
    except LaminaError:
        st = None  # missing: its parent may still take it; the upload says when not
    if st is not None and st["mode"] & (_DEVICE_BIT | _IRREGULAR_BIT):
        kind = "a device" if st["mode"] & _DEVICE_BIT else "an irregular file"
        raise UsageError(f'destination "{ctr}:{dst}" must be a directory or a regular file: got {kind}')
    exists, is_dir = st is not None, st is not None and bool(st["mode"] & _DIR_BIT)

    if src == "-":
        if not is_dir:
            raise UsageError(f'destination "{ctr}:{dst}" must be a directory')
        dst_dir, write = dst_path, None
    else:
        parent_dir, base, src_is_dir, rebase = _local_source(_local(src), follow)
        dst_dir, arcname = _prepare(src_is_dir, rebase or base, dst_path, exists, is_dir)
        write = lambda out: _write_local(parent_dir, base, arcname, out)  # noqa: E731
    try:
        if write is None:
            put_archive(system, ctr, dst_dir, sys.stdin.buffer, no_overwrite_dir_non_dir=True,
                        copy_uid_gid=archive)
            return 0, None
        copied = _pipe(write, lambda stream: put_archive(system, ctr, dst_dir, stream, no_overwrite_dir_non_dir=True,
                                                         copy_uid_gid=archive), thread_reads=False)
    except NotFound:
        raise _no_such_path(ctr, dst_dir) from None
    return copied, f"{ctr}:{dst_path}"


def _local_source(path: str, follow: bool) -> tuple[str, str, bool, str]:
    """archive.CopyInfoSourcePath: (parent directory, entry, is a directory, rebase
    name); the links in the parent are followed, the entry's own only with -L."""
    import stat

    try:
        if follow:
            resolved, rebase = _rebase_name(path, os.path.realpath(path, strict=True))
        else:
            head, tail = path[: path.rfind("/") + 1], path[path.rfind("/") + 1:]
            resolved = os.path.realpath(head or ".", strict=True).rstrip("/") + "/" + tail
            rebase = _base(path) if path.endswith("/") and _base(path) != _base(resolved) else ""
        st = os.lstat(resolved)
    except OSError as e:
        raise _go_error(e) from None
    parent, base = _split_dir_entry(resolved)
    return parent, base, stat.S_ISDIR(st.st_mode), rebase


def _write_local(parent: str, base: str, arcname: str, out) -> None:
    from lamina.archive.layertar import write_entry

    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        write_entry(fd, "." if base == "/" else base, "" if arcname == "/" else arcname, out)
    finally:
        os.close(fd)
