"""COPY and ADD: sources from the context, a stage, an image, a heredoc or a URL.

Docker's destination rules: a relative destination is under WORKDIR; one ending
in `/`, several sources or a wildcard mean "into this directory"; a directory
source copies its content; a single file onto an existing directory lands inside
it.  ADD extracts local tar archives and downloads http(s) URLs (addsources.py).
The cache key covers the content, never mtimes.

Sources are hashed twice at most but each hash covers one read: a lookup key from
the sources as they are before the step (cache.hash_sources), and, when the step
runs, the key it is recorded under from the bytes actually copied (fileops.Writer
hashes while it writes, an ADD archive is hashed while it is extracted).  A file
changed between the two can then only give a miss, never an image stored under
another content's key.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from contextlib import ExitStack

from lamina.builder import configchanges as cc
from lamina.builder import instructions as I
from lamina.builder.addsources import add_archive, download
from lamina.builder.cache import ContentHasher, hash_sources
from lamina.builder.commit import commit, layer_from_container
from lamina.builder.context import BuildContext
from lamina.builder.chmod import parse_chmod
from lamina.builder.fileops import Writer, ownership
from lamina.errors import BuildError

_URL_PREFIXES = ("http://", "https://")


def copy_step(b, state, ins) -> None:
    from lamina.builder.runstep import StepContainer

    name = "ADD" if isinstance(ins, I.Add) else "COPY"
    where = f"{b.filename}:{ins.line}"
    cfg = state.new_cfg()
    with ExitStack() as stack:
        cleanups: list = []
        stack.callback(lambda: [fn() for fn in reversed(cleanups)])
        ctx, from_id = _source_root(b, ins, where, cleanups)
        if ins.parents:
            raise BuildError(f"{where}: COPY --parents is not supported yet")
        excludes = [b.expand(state, e, ins.line) for e in ins.exclude]
        walk = _excluding(ctx.walk, excludes, where)
        srcs_raw = [b.expand(state, s, ins.line) for s in ins.sources]
        urls = [s for s in srcs_raw if name == "ADD" and s.startswith(_URL_PREFIXES)]
        local = [s for s in srcs_raw if s not in urls]
        if name == "ADD" and any(s.startswith(("git@", "git://")) or s.endswith(".git") for s in local):
            raise BuildError(f"{where}: ADD of git repositories is not supported")
        matched = []
        wild = False
        for pattern in local:
            try:
                found = ctx.match(pattern)
            except BuildError as e:
                raise BuildError(f"{where}: {name} failed: {e}") from None
            if not found and not _is_glob(pattern):
                raise BuildError(f'{where}: {name} failed: file not found in build context or excluded '
                                 f'by .dockerignore: "{pattern}": not found')
            wild = wild or _is_glob(pattern)
            matched += found
        inline = [(h.name, _heredoc_data(b, state, h, ins.line)) for h in ins.heredocs]
        checksum = b.expand(state, ins.checksum, ins.line) if ins.checksum else None
        downloads = [download(u, checksum, where, b.system.tmp_dir, cleanups) for u in urls]
        if downloads:
            b.memoizable = False  # a URL is fetched again by every build
        if checksum and not urls:
            raise BuildError(f"{where}: checksum can't be specified for non-HTTP(S) sources")
        count = len(matched) + len(inline) + len(downloads)
        if count == 0 and not wild:  # BuildKit: wildcards that match nothing copy nothing
            raise BuildError(f"{where}: {name} failed: no source files were specified")
        dest = b.expand(state, ins.dest, ins.line)
        # BuildKit: only a trailing `/`, `.` or nothing says "into this directory"; `/y/.`
        # names the path /y (a file, unless a directory is there already).
        into_dir = dest.endswith("/") or dest in (".", "")
        if (len(ins.sources) + len(ins.heredocs) > 1 or wild) and not (into_dir or dest.endswith("/.")):
            raise BuildError(f"{where}: When using {name} with more than one source file, "
                             "the destination must be a directory and end with a /")
        workdir = cfg.get("WorkingDir") or "/"
        dest_abs = dest if dest.startswith("/") else posixpath.join(workdir, dest)
        dest_abs = "/" + posixpath.normpath(dest_abs).lstrip("/")  # lexically, as BuildKit's fileop
        chown = b.expand(state, ins.chown, ins.line) if ins.chown else None
        chmod = b.expand(state, ins.chmod, ins.line) if ins.chmod else None
        mode_fn = parse_chmod(chmod) if chmod else None

        key_parts = (name.lower(), dest_abs, into_dir, chmod, ins.link, str(from_id) if from_id else None,
                     [s.rel for s in matched], [n for n, _ in inline], list(urls), excludes, ins.unpack,
                     "layer-always,source-owners")  # semantics older caches did not have
        unpack = ins.unpack is not False and name == "ADD"

        files: dict = {f"<<{n}": hashlib.sha256(data).hexdigest()[:32] for n, data in inline}
        files.update((d[0], d[2][:32]) for d in downloads)
        b.explain.note(instruction=" ".join([name] + (["--chown=" + chown] if chown else []) +
                                            (["--chmod=" + chmod] if chmod else []) + srcs_raw + [dest]),
                       files=files)

        def created_by_for(parts: list[str] | None) -> str:
            label = _label(ctx, matched, inline, downloads, parts, walk, files)
            text = f"{name} {'--chown=' + chown + ' ' if chown else ''}{label} in {dest} "
            return cc.nop1(state.shell, text)

        # With a cache lookup to do, the sources are hashed first for the lookup key.  A
        # made image is always recorded under the key of what was copied (hashed as it
        # was written), so the two reads can never leave an image under a wrong key.
        probe = not (b.req.no_cache or (state.busted and b.remote is None))  # a shared cache: always
        probed = created_by_for(None) if probe else None
        lookup = b.key(state, probed, *key_parts) if probe else None
        created_by = ""
        hashes: list[str] = []

        def make():
            nonlocal created_by
            parent = state.image
            with StepContainer(b.system, parent, cfg) as ctr:
                rootfs = ctr.mount()
                own = ownership(rootfs, chown, mode_fn, where, keep=from_id is not None)
                w = Writer(rootfs, own)
                fresh = _fresh_dir(ctr, w, matched, inline, downloads, dest_abs, into_dir) if count else None
                if fresh is None:
                    _write_all(w, ctx, matched, inline, downloads, dest_abs, into_dir,
                               extract=unpack, where=where, hashes=hashes, walk=walk, files=files)
                    w.restore_dir_times()
                    ctr.unmount()
                    layer = layer_from_container(b.system, ctr.snap, ctr.dir, parent, epoch=b.req.epoch)
                else:  # a new directory: write it straight into the upper dir, tar it meanwhile
                    ctr.unmount()
                    layer = _copy_fresh(b, ctr, parent, own, ctx, matched, inline, downloads, fresh,
                                        tee=not unpack and b.req.epoch is None,  # an epoch: clamp, then tar
                                        where=where, hashes=hashes, walk=walk, files=files)
                created_by = created_by_for(hashes)
                # BuildKit: every COPY/ADD is a layer, even one that changes nothing
                return commit(b.system, parent, cfg, created_by, layer=layer, real_layer=True, epoch=b.req.epoch)

        _cached_or(b, state, lookup, lambda: b.key(state, created_by, *key_parts), make, source=(probed, cfg))


def _cached_or(b, state, lookup: str | None, recorded, make, source: tuple | None = None) -> None:
    """Look the step up under `lookup`; a made image goes under `recorded()`, the key
    of the content as it was copied (`b.cached_or` does no lookup for a callable).
    `source`: the step's created_by and config, for the classic cachefrom images."""
    if lookup is not None and b.lookup(state, lookup, source) is not None:

        def make_same():  # the entry vanished since the lookup (rmi): keep the key honest
            image = make()
            if recorded() != lookup:
                raise BuildError("the build context changed while this step read it; build again")
            return image

        b.cached_or(state, lookup, make_same, source=source)
        return
    b.cached_or(state, recorded, make)


def _copy_fresh(b, ctr, parent, own, ctx, matched, inline, downloads, dest: str, *, tee: bool, where: str,
                hashes, walk, files=None) -> tuple:
    """Copy into the fresh directory through the upper dir; with `tee`, the layer tar
    is written at the same time (no second read of the data)."""
    from lamina.builder.commit import register_layer
    from lamina.builder.teetar import Behind, TarTee
    from lamina.snapshot.placement import Spreader

    upper = os.path.join(ctr.dir, "upper")
    w = Writer(upper, own)
    w.spread = Spreader(b.system.root)  # new dirs where creates are cheap (ext4 without a journal)
    with b.system.content.writer() as blob, Behind(blob) as behind:
        t = TarTee(behind, upper) if tee else None
        if t is not None and t.existing():
            w.tee = t
        _write_all(w, ctx, matched, inline, downloads, dest, True, extract=not tee, where=where, hashes=hashes,
                   walk=walk, files=files)
        w.restore_dir_times()
        if w.tee is None:
            behind.close()
            blob.abort()
            return layer_from_container(b.system, ctr.snap, ctr.dir, parent, epoch=b.req.epoch)
        w.tee.finish()
        behind.close()  # the blob holds every byte: its hash is final
        w.tee.restore_times()
        diff_id = blob.commit()
    return register_layer(b.system, ctr.snap, ctr.dir, parent, diff_id, blob.size,
                          written=(w.tee.unpacked, w.tee.found))


def _fresh_dir(ctr, w: Writer, matched, inline, downloads, dest: str, into_dir: bool) -> str | None:
    """When every source goes into a directory that no layer below has, create it
    through the overlay (which copies its parents up) and return its real path: the
    rest can then be written into the upper dir directly, at the speed of the
    underlying filesystem instead of overlay's per-file lookups in every lower layer."""
    many = into_dir or len(matched) + len(inline) + len(downloads) > 1
    if ctr.snap.name != "overlay" or not (many or (matched and all(s.is_dir for s in matched))):
        return None
    if w.dest_is_dir(dest) or not os.path.isdir(os.path.join(ctr.dir, "upper")):
        return None
    try:
        host = w.resolve_dir(dest)
    except BuildError:
        return None
    rel = os.path.relpath(host, w.rootfs)
    return "/" if rel == "." else "/" + rel


def check_sources(b, ins) -> None:
    """Preflight (before any step runs) of the sources that hold no `$`."""
    name = "ADD" if isinstance(ins, I.Add) else "COPY"
    where = f"{b.filename}:{ins.line}"
    found = 0
    for pattern in ins.sources:
        if "$" in pattern or pattern.startswith(_URL_PREFIXES) or "\\" in pattern:
            return
        try:
            hits = b.context.match(pattern)
        except BuildError as e:
            raise BuildError(f"{where}: {name} failed: {e}") from None
        if not hits and not _is_glob(pattern):
            raise BuildError(f'{where}: {name} failed: file not found in build context or excluded '
                             f'by .dockerignore: "{pattern}": not found')
        found += len(hits)
    if not found and not ins.heredocs and not any(_is_glob(p) for p in ins.sources):
        raise BuildError(f"{where}: {name} failed: no source files were specified")


def _excluding(walk, patterns: list[str], where: str):
    """COPY/ADD --exclude: drop what the patterns match (the .dockerignore matcher),
    paths taken relative to the source being copied."""
    if not patterns:
        return walk
    from lamina.builder.dockerignore import IgnoreMatcher

    matcher = IgnoreMatcher(patterns, f"{where}: --exclude")

    def filtered(rel: str):
        for path, st in walk(rel):
            sub = path[len(rel):].lstrip("/") if rel else path
            if sub and matcher.matches(sub):
                continue
            yield path, st

    return filtered


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _source_root(b, ins, where: str, cleanups: list):
    """The context, or the rootfs of `--from` (a stage or an image)."""
    if not getattr(ins, "from_", None):
        return b.context, None
    from lamina.builder.mounts import mount_from

    rootfs, image_id = mount_from(b, ins.from_, where, cleanups)
    ctx = BuildContext(rootfs, None, in_root=True)
    cleanups.append(ctx.close)  # before the unmount (cleanups run last first)
    return ctx, image_id


def _heredoc_data(b, state, doc, line: int) -> bytes:
    body = doc.body
    if doc.expand:
        body = b.expand(state, body, line)
    return body.encode("utf-8", "surrogateescape")


def _label(ctx, matched, inline, downloads, parts: list[str] | None = None, walk=None, files=None) -> str:
    """moby's `file:<h>` / `dir:<h>` / `multi:<h>` source label; `parts` are the
    per-source labels when they were computed while copying."""
    parts = list(parts) if parts is not None else []
    if matched and not parts:
        for src in matched:
            label, _ = hash_sources(ctx, [src], walk, files)
            parts.append(label)
    for name, data in inline:
        h = ContentHasher()
        h.add_bytes(name, data)
        parts.append("file:" + h.hexdigest())
    for d in downloads:
        parts.append("file:" + d[2])
    if len(parts) == 1:
        return parts[0]
    return "multi:" + hashlib.sha256(",".join(parts).encode()).hexdigest()


def _write_all(w: Writer, ctx, matched, inline, downloads, dest: str, into_dir: bool, *,
               extract: bool, where: str, hashes: list[str] | None = None, walk=None, files=None) -> None:
    """Docker's destination rules; `dest` is an absolute in-container path.  With
    `hashes`, each source's content label is appended to it as it is copied, from
    the bytes written."""
    walk = walk or ctx.walk
    try:
        many = into_dir or len(matched) + len(inline) + len(downloads) > 1
        for src in matched:
            if hashes is not None:
                w.hasher = ContentHasher(files, src.rel)
            if src.is_dir:
                w.copy_tree(ctx, src.follow, dest, walk=walk)
                if hashes is not None:
                    hashes.append("dir:" + w.hasher.hexdigest())
                continue
            if extract and add_archive(w, ctx, src, dest, where):
                if hashes is not None:
                    hashes.append("file:" + w.hasher.hexdigest())
                continue
            name = posixpath.basename(src.rel)
            target = posixpath.join(dest, name) if many or w.dest_is_dir(dest) else dest
            w.copy_tree(ctx, src.follow, target, walk=walk)
            if hashes is not None:
                hashes.append("file:" + w.hasher.hexdigest())
        w.hasher = None
        for name, data in inline:
            target = posixpath.join(dest, name) if many or w.dest_is_dir(dest) else dest
            w.write_bytes(w.target(target), data, 0o644)
        for url_name, path, _digest, mtime in downloads:
            target = posixpath.join(dest, url_name) if many or w.dest_is_dir(dest) else dest
            with open(path, "rb") as f:
                w.write_bytes(w.target(target), f.read(), 0o600, mtime)
    except OSError as e:
        raise BuildError(f"{where}: copy failed: {e.strerror}: {e.filename or ''}".rstrip(": ")) from None
    except BuildError as e:  # the context changed under the copy (context.py, fileops.py)
        if str(e).startswith(where):
            raise
        raise BuildError(f"{where}: copy failed: {e}") from None
