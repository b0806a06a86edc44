"""crun's compiled seccomp filters, kept and handed back to it on the next start.

Compiling docker's profile into BPF with libseccomp is about half of what a crun
start costs here (crun alone: 21 ms with `linux.seccomp`, 11 ms when handed the
compiled filter).  crun keeps compiled filters itself only when it is built with
libgcrypt (for its checksum), and Debian's 1.8.1 is not.  It does load a compiled
filter given in the annotation `run.oci.seccomp_bpf_data` (base64) instead of
compiling `linux.seccomp`, and once it has compiled one it keeps it in its state,
`<root>/<id>/seccomp.bpf`, for the container's execs.  So the first container with
a profile starts as before, and once it runs its filter, crun's own output, is
copied here; the next ones get it through the annotation.  lamina never compiles,
reads into or edits a filter: it only carries crun's bytes back to crun.

The key binds what those bytes depend on, as crun's own cache key does: the
`linux.seccomp` section as config.json has it (so the capabilities it was resolved
for), the crun binary and the libseccomp it loads (device, inode, size, times), and
the kernel (uname).  A changed profile or capability set, an upgraded crun or
libseccomp, another kernel: another key, and crun compiles again.

An entry is `sha256:<hex of the filter>` and a newline, then the filter; written
under a temporary name and renamed, and checked on every read (its digest, and a
length BPF allows).  One that fails the check is removed and crun compiles from the
profile: a torn or altered entry costs a compile, never the confinement.  The
directory is the store's (root's, 0700): whoever can write there already owns every
container.  runc has no such annotation: only crun is given filters.
"""

from __future__ import annotations

import os

ANNOTATION = "run.oci.seccomp_bpf_data"
_FORMAT = "lamina-seccomp-1"  # part of every key: a new entry format is a new key
_MAX = 4096 * 8  # BPF_MAXINSNS instructions of 8 bytes: the kernel refuses a longer filter
_KEEP = 64  # entries; beyond that (many custom profiles) the older half goes


def for_runtime(runtime) -> SeccompFilter | None:
    """The cache's use by one container start, or None: runc, or a crun whose
    libseccomp could not be identified (then crun compiles every time, as before)."""
    if runtime.name != "crun" or "LD_LIBRARY_PATH" in os.environ or "LD_PRELOAD" in os.environ:
        return None  # the library crun loads would not be the one identified once per binary
    library = _libseccomp(runtime)
    if library is None:
        return None
    try:
        parts = [_FORMAT, _identity(runtime.path), _identity(library) if library else "static", *os.uname()[2:5]]
    except OSError:
        return None
    return SeccompFilter(os.path.join(os.path.dirname(runtime.state_root), "seccomp"), "\0".join(parts),
                         runtime.state_root)


class SeccompFilter:
    """`annotate(config)` before config.json is written; when that found no filter
    (`wanted`), `learn(container_id)` once the container runs, while crun's state is there."""

    def __init__(self, directory: str, identity: str, state_root: str) -> None:
        self.directory, self.identity, self.state_root = directory, identity, state_root
        self.key: str | None = None  # a miss: the key to learn the compiled filter under

    @property
    def wanted(self) -> bool:
        return self.key is not None

    def annotate(self, config: dict) -> None:
        """Give crun the compiled filter of config's profile, when one is kept."""
        section = (config.get("linux") or {}).get("seccomp")
        annotations = config.get("annotations") or {}
        if not section or any(name.startswith("run.oci.seccomp") for name in annotations):
            return  # unconfined, or crun's seccomp annotations set already: crun decides alone
        from binascii import b2a_base64

        from lamina.digest import Digest
        from lamina.leanjson import dumps

        key = Digest.of_bytes(f"{self.identity}\0{dumps(section, (',', ':'))}".encode()).hex
        compiled = _entry(self.directory, key)
        if compiled is None:
            self.key = key
            return
        config["annotations"] = {**annotations, ANNOTATION: b2a_base64(compiled, newline=False).decode()}

    def learn(self, container_id: str) -> None:
        """Keep the filter crun compiled for `container_id` (running, or stopped and not
        deleted).  Never fails the start: a cache that cannot be filled is only slower."""
        key, self.key = self.key, None
        if key is None:
            return
        try:
            compiled = _read(os.path.join(self.state_root, container_id, "seccomp.bpf"))
            if compiled is not None and _plausible(compiled):
                _store(self.directory, key, compiled)
        except OSError:
            pass


def _libseccomp(runtime) -> str | None:
    """The libseccomp the runtime loads ("" when linked in statically), by `ldd` once per
    binary and cached beside its version; None when that cannot be told."""
    from lamina.runtime.oci import cached_fact

    def probe() -> str | None:
        from lamina.runtime.oci import which
        from lamina.runtime.process import capture

        ldd = which("ldd")
        rc, out, err = capture([ldd, runtime.path]) if ldd else (1, b"", b"")
        if rc != 0:  # a static binary has its libseccomp inside: the binary's identity covers it;
            # a script (a wrapper) does not: the crun it starts could change under the same key
            return "" if b"not a dynamic executable" in err and _is_elf(runtime.path) else None
        for line in out.decode("utf-8", "replace").splitlines():
            name, _, found = line.strip().partition(" => ")
            if name.startswith("libseccomp.so"):
                path = found.split(" (")[0]
                return path if path.startswith("/") else None
        return ""

    return cached_fact(runtime.path, os.path.dirname(runtime.state_root), "libseccomp", probe)


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _identity(path: str) -> str:
    st = os.stat(path)  # through links: the file itself
    return f"{path}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _plausible(compiled: bytes) -> bool:
    return 0 < len(compiled) <= _MAX and len(compiled) % 8 == 0


def _read(name: str, dir_fd: int | None = None) -> bytes | None:
    """A regular file's bytes, bounded; None for anything else (a link, a FIFO: never followed or waited on)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o170000 != 0o100000 or st.st_size > _MAX + 80:
            return None
        return os.read(fd, _MAX + 80)
    finally:
        os.close(fd)


def _open_directory(directory: str) -> int | None:
    """The cache directory, never through a link (its entries are opened relative to it)."""
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None


def _entry(directory: str, key: str) -> bytes | None:
    """The verified filter of an entry; one that fails the check is removed."""
    dir_fd = _open_directory(directory)
    if dir_fd is None:
        return None
    try:
        data = _read(key, dir_fd)
        if data is not None:
            from lamina.digest import Digest

            header, _, compiled = data.partition(b"\n")
            if _plausible(compiled) and header == f"sha256:{Digest.of_bytes(compiled).hex}".encode():
                return compiled
        _remove(key, dir_fd)  # damaged, not a regular file, or too long: not ours (gone already: a miss)
        return None
    finally:
        os.close(dir_fd)


def _store(directory: str, key: str, compiled: bytes) -> None:
    from lamina.digest import Digest

    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    dir_fd = _open_directory(directory)
    if dir_fd is None:
        return
    try:
        tmp = f".{key}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(f"sha256:{Digest.of_bytes(compiled).hex}\n".encode() + compiled)
            os.replace(tmp, key, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _remove(tmp, dir_fd)
            raise
        names = os.listdir(dir_fd)
        if len(names) > _KEEP:
            _evict(dir_fd, names)
    finally:
        os.close(dir_fd)


def _evict(dir_fd: int, names: list[str]) -> None:
    """The older half goes (by when it was written): a few profiles are what most stores use."""
    aged = []
    for name in names:
        try:
            aged.append((os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mtime_ns, name))
        except OSError:
            pass
    for _, name in sorted(aged)[: len(aged) // 2]:
        _remove(name, dir_fd)


def _remove(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
