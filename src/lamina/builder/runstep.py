"""Running one build container: RUN steps, and the mounted rootfs COPY/ADD/WORKDIR write into.

A step container is a normal container record (so `ps -a` shows one left by a
killed build, and `rm` removes it) on the step's parent image; a RUN step's
watchdog stops and removes it when the build is killed, as docker's builder does.  RUN gets stdin
from /dev/null and no tty, like `docker build`: a prompt (`apt install` without
-y) reads EOF and fails instead of hanging.  The container is removed by the
caller after its changes were committed.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

from lamina import oci
from lamina.errors import BuildError


# BuildKit names every build step's host this, whatever its network mode, so builds
# that record the hostname are reproducible (not the step container's ID).
BUILD_HOSTNAME = "buildkitsandbox"


@dataclass(frozen=True)
class ExtraMount:
    """A RUN --mount, already resolved to a host source (bind/cache/secret) or tmpfs."""

    target: str
    source: str | None  # None: tmpfs
    readonly: bool = False
    size: int | None = None


class StepContainer:
    """A container record + writable layer over `parent`; use as a context manager."""

    def __init__(self, system, parent, cfg: dict) -> None:
        self.system = system
        self.parent = parent
        self.snap = system.snapshotter
        self.layers = parent.layers()
        self.rec = system.containers.create(
            name=None, image_id=str(parent.id) if parent.id else "scratch", image_ref=str(parent.id or "scratch"),
            config=cfg, host_config={"NetworkMode": "none", "AutoRemove": True}, driver=self.snap.name)
        self.id = self.rec.id
        self.dir = system.containers.path(self.id)
        self.rootfs: str | None = None
        self.snap.prepare(self.dir, self.layers)

    def mount(self) -> str:
        if self.rootfs is None:
            self.rootfs = self.snap.mount(self.dir, self.layers)
        return self.rootfs

    def unmount(self) -> None:
        if self.rootfs is not None:
            self.snap.unmount(self.dir)
            self.rootfs = None

    def remove(self) -> None:
        from lamina.lifecycle import remove_dir
        from lamina.network import release

        release(self.system, self.id)
        self.unmount()
        try:
            self.system.containers.delete(self.id)
        finally:
            self.snap.remove(self.dir)
            remove_dir(self.dir)

    def __enter__(self) -> "StepContainer":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    # ------------------------------------------------------------------ RUN
    def run(self, argv: list[str], env: list[str], *, user: str, workdir: str, network: str,
            mounts: tuple[ExtraMount, ...] = (), quiet: bool = False, privileged: bool = False,
            extra_hosts: tuple[str, ...] = ()) -> int:
        """Through the one container runner (lamina/runner.py), as `run` does, with
        docker's default confinement (`privileged`: RUN --security=insecure, as BuildKit's
        insecure mode: all capabilities and devices, no seccomp; `extra_hosts`: build's
        --add-host lines in /etc/hosts); a build killed with -9 must not leave its step
        running (the watchdog)."""
        from lamina.runner import Launch, run_container
        from lamina.runtime.specmounts import BindMount, TmpfsMount

        cwd = workdir or "/"
        launch = Launch(
            args=tuple(argv), env=tuple(env), cwd=cwd, user=user, hostname=BUILD_HOSTNAME, network=network,
            binds=tuple(BindMount(m.source, m.target, m.readonly) for m in mounts if m.source is not None),
            tmpfs=tuple(TmpfsMount(m.target, m.size) for m in mounts if m.source is None),
            check_command=False, auto_remove=True,
            host_config={**({"Privileged": True} if privileged else {}),
                         **({"ExtraHosts": list(extra_hosts)} if extra_hosts else {})},
            emulate=oci.foreign_arch(self.parent.config),  # a --platform stage's RUN: under qemu
        )

        def prepare(rootfs: str):
            from lamina.runtime.rootfs import resolved_workdir_is_proc

            if resolved_workdir_is_proc(rootfs, cwd):
                raise BuildError(f"working directory {cwd} resolves into /proc: refused")
            stubs = _make_stubs(rootfs, mounts)
            return lambda: _remove_stubs(rootfs, stubs)

        self.rootfs = None  # the runner mounts it, and unmounts it when the step ends
        return run_container(self.system, self.rec, self.snap, self.layers, launch, prepare=prepare,
                             output=_quiet_output(quiet))


@contextmanager
def _quiet_output(quiet: bool):
    """Where a RUN's output goes: like docker's build stream, stdout and stderr both
    into our stdout (so `build > log` keeps all of it); with -q, to /dev/null."""
    saved = os.dup(1), os.dup(2)
    target = os.open(os.devnull, os.O_WRONLY) if quiet else os.dup(1)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


def _make_stubs(rootfs: str, mounts: tuple[ExtraMount, ...]) -> list[tuple[str, int]]:
    from lamina.archive.inroot import InRoot

    tree = InRoot(rootfs)
    stubs: list[tuple[str, int]] = []
    try:
        for m in mounts:
            try:
                stubs += _ensure_mountpoint(tree, m.target, is_dir=m.source is None or os.path.isdir(m.source))
            except OSError as e:
                raise BuildError(f"mount target {m.target}: {e.strerror.lower()}") from None
    finally:
        tree.close()
    return stubs


def _ensure_mountpoint(tree, target: str, *, is_dir: bool) -> list[tuple[str, int]]:
    """Mount targets must exist: missing ones (and missing parents) are made as stubs
    through the root's own links (fds from the root, never out of it) and listed as
    (real path, inode) so they can be removed after the run: like BuildKit, mount
    points never end up in the committed layer."""
    from lamina.archive.inroot import clean, make_dirs

    parts = clean(target)
    if not parts:
        return []
    _, made = make_dirs(tree, target if is_dir else "/".join(parts[:-1]))
    stubs = [(d, os.fstat(tree.dir_fd(d)).st_ino) for d in made]
    if not is_dir:
        parent = tree.resolve(parts[:-1], create=False, entry=target)
        pfd = tree.dir_fd(parent)
        try:
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=pfd)
        except FileExistsError:  # a file, or a link runc resolves inside the root itself
            return stubs
        stubs.append((f"{parent}/{parts[-1]}" if parent else parts[-1], os.fstat(fd).st_ino))
        os.close(fd)
    return stubs


def _remove_stubs(rootfs: str, stubs: list[tuple[str, int]]) -> None:
    """Remove the stubs we made, deepest first, only while still empty and the same
    inode.  The step may have swapped a stub's parent for a link to a host directory
    (CVE-2024-23652), so each one is reached by a no-follow walk of directory fds
    from the root and removed relative to its parent's fd: a link on the way ends
    the walk, it is never followed."""
    import stat

    from lamina.archive.inroot import InRoot

    tree = InRoot(rootfs)
    try:
        for real, ino in reversed(stubs):
            parent, _, name = real.rpartition("/")
            try:
                pfd = tree.dir_fd(parent)
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if st.st_ino != ino:
                    continue  # not ours any more: the step's own content
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(name, dir_fd=pfd)
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(name, dir_fd=pfd)
            except OSError:
                pass  # swapped, filled or gone: leave it in the layer
            tree.forget()  # the tree changed under the fd cache
            tree.release()
    finally:
        tree.close()
