"""RUN --mount: bind, cache, tmpfs, secret — resolved to host paths, confined.

* bind: a context path (default) or a path in a stage's / image's rootfs, resolved
  *inside* that root by the context's dirfd walk (CVE-2024-1753: a `source` link to
  `/`, or a link in the middle of the path, cannot reach the host); read-only unless
  rw, and rw writes land in a throwaway copy, as does a context directory holding
  .dockerignore'd files (docker never sends them).  Its content hash is part of the
  step key.
* cache: a persistent dir under the store, `build-cache/<sha256(id)>` (the id is
  never used as a path, CVE-2024-9675), locked with flock while in use so parallel
  builds never share one mid-step (CVE-2024-23651).  Not in the key.
* tmpfs: an empty tmpfs.  secret: a 0400 copy of the secret file bind-mounted at
  its target, or an env var; the value is never in the key or the image.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

from lamina.builder.runstep import ExtraMount
from lamina.errors import BuildError


@dataclass(frozen=True)
class Prepared:
    mounts: tuple[ExtraMount, ...]
    env: list[str]
    key: list


@contextmanager
def prepare_mounts(b, state, ins, mounts):
    out: list[ExtraMount] = []
    env: list[str] = []
    key: list = []
    cleanups: list = []
    where = f"{b.filename}:{ins.line}"
    try:
        for m in mounts:
            target = m.target
            if m.type == "secret" and not target and not m.env:
                target = "/run/secrets/" + (m.id or os.path.basename(m.source or ""))
            if m.type not in ("secret",) and not target:
                raise BuildError(f"{where}: mount target is required")
            if target and not target.startswith("/"):
                target = os.path.join(state.cfg.get("WorkingDir") or "/", target)
            if m.type == "bind":
                ctx, src, digest = _bind_source(b, state, m, where, cleanups)
                source = ctx.host(src.follow)
                # Writes land in a throwaway copy, and so does a directory with .dockerignore'd
                # entries (docker never sends them); it is read through the walk's fds.
                if not m.readonly or (src.is_dir and ctx.hides(src.follow)):
                    from lamina.builder.fileops import Ownership, Writer

                    copy = tempfile.mkdtemp(dir=b.system.tmp_dir, prefix=f"build-{os.getpid()}-rw-")
                    cleanups.append(lambda p=copy: shutil.rmtree(p, ignore_errors=True))
                    w = Writer(copy, Ownership(keep=bool(m.from_)))  # a stage's files keep their owners
                    try:
                        w.copy_tree(ctx, src.follow, "/src", walk=ctx.walk)
                    except OSError as e:
                        raise BuildError(f"{where}: cannot copy mount source: {e.strerror}") from None
                    w.restore_dir_times()
                    source = os.path.join(copy, "src")
                out.append(ExtraMount(target, source, readonly=m.readonly))
                key.append(["bind", target, m.readonly, digest])
            elif m.type == "cache":
                path = _cache_dir(b, m, target, cleanups)
                out.append(ExtraMount(target, path, readonly=m.readonly))
                key.append(["cache", target, m.id or target, m.readonly])
            elif m.type == "tmpfs":
                out.append(ExtraMount(target, None, size=m.size))
                key.append(["tmpfs", target, m.size])
            elif m.type == "secret":
                secret = _secret(b, m, where)
                if secret is None:
                    continue
                if m.env:
                    env.append(f"{m.env}={secret.decode('utf-8', 'surrogateescape')}")
                if target or not m.env:
                    tmp = tempfile.mkdtemp(dir=b.system.tmp_dir, prefix=f"build-{os.getpid()}-secret-")
                    cleanups.append(lambda p=tmp: shutil.rmtree(p, ignore_errors=True))
                    path = os.path.join(tmp, "secret")
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
                    with os.fdopen(fd, "wb") as f:
                        f.write(secret)
                    os.chown(path, m.uid or 0, m.gid or 0)
                    os.chmod(path, m.mode if m.mode is not None else 0o400)
                    out.append(ExtraMount(target, path, readonly=True))
                key.append(["secret", m.id, target, m.env])
            else:
                raise BuildError(f"{where}: --mount=type={m.type} is not supported")
        yield Prepared(tuple(out), env, key)
    finally:
        for fn in reversed(cleanups):
            fn()


def _bind_source(b, state, m, where: str, cleanups: list):
    """(root, source, key part) of a bind source, resolved inside its root (the
    context, or a stage's rootfs) by the no-follow walk: links, the last one too,
    never leave the root."""
    from lamina.archive.inroot import clean
    from lamina.builder.cache import hash_sources
    from lamina.builder.context import BuildContext

    if not m.from_:
        ctx = b.context
        rel = BuildContext.clean(m.source or "")
        src = ctx.resolve(rel)
        if src is None:
            raise BuildError(f'{where}: failed to compute cache key: "/{rel}": not found')
        _, digest = hash_sources(ctx, [src])
        return ctx, src, digest
    rootfs, image_id = mount_from(b, m.from_, where, cleanups)
    ctx = BuildContext(rootfs, in_root=True)
    cleanups.append(ctx.close)  # before the unmount (cleanups run last first)
    src = ctx.resolve("/".join(clean(m.source or "/")))  # `..` stops at the stage's root
    if src is None:
        raise BuildError(f'{where}: failed to compute cache key: "{m.source}": not found')
    return ctx, src, f"{image_id}:{m.source or '/'}"


def mount_from(b, name: str, where: str, cleanups: list) -> tuple[str, str]:
    """A read-only view of the layers of a stage (name or index) or an image, never
    a container's rootfs (whose init layer would show /.dockerenv, /etc/hosts...);
    returns (root path, image id).  The view is closed by the cleanups."""
    from lamina.builder.commit import Parent
    from lamina.builder.stages import resolve_ref
    from lamina.snapshot.view import close_view, open_view

    ref = resolve_ref(name, list(b.plan.stages), allow_index=True, before=None)
    if ref.stage is not None:
        if ref.stage not in b.stage_images:
            raise BuildError(f"{where}: stage {name!r} has not been built yet")
        image_id = b.stage_images[ref.stage]
    else:
        image_id = b._image(ref.image, int(where.rsplit(":", 1)[1]), what=f"--from={name}")
    root = open_view(b.system, Parent(b.system, image_id).layers())
    cleanups.append(lambda: close_view(root))
    return root, str(image_id)


def _cache_dir(b, m, target: str, cleanups: list) -> str:
    ident = m.id or target
    base = os.path.join(b.system.root, "build-cache")
    os.makedirs(base, mode=0o700, exist_ok=True)
    name = hashlib.sha256(ident.encode()).hexdigest()
    path = os.path.join(base, name)
    if not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)
        os.chown(path, m.uid or 0, m.gid or 0)
        os.chmod(path, m.mode if m.mode is not None else 0o755)
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    cleanups.append(lambda: os.close(lock))
    return path


def _secret(b, m, where: str) -> bytes | None:
    ident = m.id or os.path.basename(m.target or "")
    src = b.req.secrets.get(ident)
    if src is None:
        if m.required:
            raise BuildError(f"{where}: secret {ident} not found")
        return None
    if isinstance(src, tuple):  # ("env", NAME)
        value = os.environ.get(src[1])
        if value is None:
            if m.required:
                raise BuildError(f"{where}: secret {ident}: environment variable {src[1]} is not set")
            return None
        return value.encode()
    with open(src, "rb") as f:
        return f.read(1 << 20)
