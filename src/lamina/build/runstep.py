"""Running one build container: RUN steps, and the mounted rootfs COPY/ADD/WORKDIR write into.

A step container is a normal container record (so `ps -a` shows one left by a
killed build, and `rm` removes it) on the step's parent image.  RUN gets stdin
from /dev/null and no tty, like `docker build`: a prompt (`apt install` without
-y) reads EOF and fails instead of hanging.  The container is removed by the
caller after its changes were committed.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass

from lamina.errors import BuildError


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
        self.unmount()
        try:
            self.system.containers.delete(self.id)
        finally:
            self.snap.remove(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "StepContainer":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    # ------------------------------------------------------------------ RUN
    def run(self, argv: list[str], env: list[str], *, user: str, workdir: str, network: str,
            mounts: tuple[ExtraMount, ...] = (), quiet: bool = False) -> int:
        from lamina.lifecycle import ensure_workdir, write_etc_files
        from lamina.runtime.rootfs import lookup_user, resolved_workdir_is_proc
        from lamina.runtime.spec import BindMount, RunSpec, build_spec

        rootfs = self.mount()
        cwd = workdir or "/"
        ensure_workdir(rootfs, cwd)
        if resolved_workdir_is_proc(rootfs, cwd):
            raise BuildError(f"working directory {cwd} resolves into /proc: refused")
        ids = lookup_user(rootfs, user)
        hosts, hostname_file, resolv = write_etc_files(self.dir, self.id[:12], network)
        binds = tuple(BindMount(m.source, m.target, m.readonly) for m in mounts if m.source is not None)
        stubs: list[str] = []
        for m in mounts:
            stubs += _ensure_mountpoint(rootfs, m.target, is_dir=m.source is None or os.path.isdir(m.source))
        spec = RunSpec(args=tuple(argv), rootfs=rootfs, env=tuple(env), cwd=cwd, user=ids,
                       hostname=self.id[:12], network="host" if network == "host" else "none",
                       mounts=binds, hosts_file=hosts, hostname_file=hostname_file,
                       resolv_conf_file=resolv, cgroups_path=f"/lamina/{self.id}")
        config = build_spec(spec)
        for m in mounts:
            if m.source is None:
                opts = ["nosuid", "nodev"] + ([f"size={m.size}"] if m.size else [])
                config["mounts"].append({"destination": m.target, "type": "tmpfs", "source": "tmpfs",
                                         "options": opts})
        bundle = os.path.join(self.dir, "bundle")
        os.makedirs(bundle, exist_ok=True)
        import json

        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        runtime = self.system.runtime
        self.system.containers.set_running(self.id, os.getpid())
        try:
            with _quiet_output(quiet):
                code = runtime.run(self.id, bundle, tty=False, interactive=False)
        except BaseException:
            self.system.containers.set_exited(self.id, 137)
            raise
        self.system.containers.set_exited(self.id, code)
        _remove_stubs(stubs)
        self.unmount()
        return code


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


def _ensure_mountpoint(rootfs: str, target: str, *, is_dir: bool) -> list[str]:
    """Mount targets must exist: missing ones (and missing parents) are made as stubs,
    resolved inside the rootfs, and listed so they can be removed after the run:
    like BuildKit, mount points never end up in the committed layer."""
    from lamina.runtime.rootfs import resolve_in_root

    made: list[str] = []
    current = ""
    parts = [p for p in target.split("/") if p]
    for i, part in enumerate(parts):
        current += "/" + part
        host = resolve_in_root(rootfs, current)
        if os.path.lexists(host):
            continue
        if i < len(parts) - 1 or is_dir:
            os.mkdir(host, 0o755)
        else:
            os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        made.append(host)
    return made


def _remove_stubs(stubs: list[str]) -> None:
    """Remove the stubs we made, deepest first, only while still empty and unswapped
    (never following a link the step may have put there, CVE-2024-23652)."""
    import stat

    for path in reversed(stubs):
        try:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(path)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(path)
        except OSError:
            pass
