"""`build --output` and `--push`: where a build's result goes besides the store, as buildx.

    type=docker,dest=FILE   the image as the tar `docker save` writes (docker load reads it)
    type=oci,dest=FILE      the image as an OCI image layout tar
    type=local,dest=DIR     the final stage's filesystem, as files
    type=tar,dest=FILE      the same filesystem as one tar
    type=registry / --push  push the image's tags (type=image,push=true too)
    -o PATH                 type=local,dest=PATH (buildx's shorthand)

The image is always in the store too (the classic builder's, and buildx's
docker driver's, behaviour); an output is written after the image is tagged.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from lamina import csvattrs
from lamina.errors import UsageError

TYPES = ("local", "tar", "oci", "docker", "registry", "image")


@dataclass(frozen=True)
class Output:
    type: str
    dest: str = ""
    attrs: tuple = ()   # (key, value) pairs buildx passes on (name=, push=, ...)

    def attr(self, key: str, default: str = "") -> str:
        return dict(self.attrs).get(key, default)


def parse_outputs(values, push: bool = False) -> tuple:
    """buildx's --output values (and --push) -> Output values; buildx's and BuildKit's texts."""
    outs = []
    for text in values or ():
        if not text:
            continue
        fields = csvattrs.fields(text)
        if len(fields) == 1 and fields[0] == text and not text.startswith("type="):
            outs.append(Output("tar", "-") if text == "-" else Output("local", text))
            continue
        kind, dest, attrs = "", "", []
        for key, value in csvattrs.pairs(fields):
            if key == "type":
                kind = value
            elif key == "dest":
                dest = value
            else:
                attrs.append((key, value))
        if not kind:
            raise UsageError("type is required for output")
        outs.append(Output(kind, dest, tuple(attrs)))
    if push:
        outs.append(Output("registry"))
    for o in outs:
        _check(o)
    return tuple(outs)


def _check(o: Output) -> None:
    if o.type not in TYPES:
        raise UsageError(f'exporter "{o.type}" could not be found')
    if o.type in ("local", "tar", "oci", "docker") and not o.dest:
        raise UsageError(f"dest is required for {o.type} output")  # docker 20.10's CLI
    if o.dest == "-" and o.type != "local":
        # buildx writes to stdout when it is not a terminal; ours carries the build log
        raise UsageError(f"output file is required for {o.type} exporter. refusing to write to console")
    if o.type in ("registry", "image") and o.dest:
        raise UsageError(f"output {o.dest} is not supported by {o.type} exporter")
    if o.type in ("oci", "docker", "tar") and os.path.isdir(o.dest):
        raise UsageError("destination file is a directory")


def write_outputs(system, outputs, image_id, tags, *, out, quiet: bool = False) -> None:
    """Write each output of the built image `image_id` (its references: `tags`)."""
    from lamina.digest import Digest

    image_id = Digest(str(image_id))
    for o in outputs:
        try:
            _write(system, o, image_id, tags, out, quiet)
        except OSError as e:  # Go's os error text, as buildx prints it
            from lamina.errors import BuildError

            op = "mkdir" if o.type == "local" else "open"
            raise BuildError(f"{op} {o.dest}: {(e.strerror or str(e)).lower()}") from None


def _write(system, o: Output, image_id, tags, out, quiet: bool) -> None:
    if o.type == "local":
        export_rootfs(system, image_id, o.dest)
    elif o.type == "tar":
        with _atomic(o.dest) as f:
            _rootfs_tar(system, image_id, f)
    elif o.type in ("docker", "oci"):
        from lamina.transfer.save import save

        names = [r.familiar for r in tags] or [str(image_id)]
        with _atomic(o.dest) as f:
            save(system, names, f.fileno(), legacy=o.type == "docker")
    elif o.type == "registry" or (o.type == "image" and o.attr("push") == "true"):
        _push(system, tags, out, quiet)


def _push(system, tags, out, quiet: bool) -> None:
    from lamina.transfer.progress import for_stream
    from lamina.transfer.push import Pusher

    if not tags:
        raise UsageError("tag is needed when pushing to registry")
    progress = for_stream(out, quiet=quiet)
    for ref in tags:
        Pusher(system, progress).push(ref)


class _atomic:
    """A file written to `path.tmp` and renamed into place when complete."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp = f"{path}.{os.getpid()}.tmp"

    def __enter__(self):
        self.f = open(self.tmp, "wb")
        return self.f

    def __exit__(self, exc_type, *_):
        self.f.close()
        if exc_type is None:
            os.rename(self.tmp, self.path)
        else:
            os.unlink(self.tmp)


def export_rootfs(system, image_id, dest: str) -> None:
    """The image's filesystem into `dest` (created if missing; existing files are overwritten)."""
    from lamina.archive.extract import apply_layer
    from lamina.image import Image
    from lamina.transfer.streams import inflating

    os.makedirs(dest, exist_ok=True)
    image = Image.load(system, image_id)
    for layer in image.layer_blobs():
        with inflating(system.content.open(layer.descriptor.digest)) as stream:
            apply_layer(stream, dest, overlay_whiteouts=False)


def _rootfs_tar(system, image_id, f) -> None:
    """The filesystem as BuildKit's tar exporter writes it: entries in name order (no `./`),
    permission bits only in the mode field (a layer tar, docker's, also carries the type bits),
    numeric owners without names."""
    import tarfile
    import tempfile

    tmp = tempfile.mkdtemp(dir=system.tmp_dir, prefix="output-")

    def clean(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uname = ti.gname = ""
        ti.mtime = int(ti.mtime)
        return ti

    def walk(rel: str):
        with os.scandir(os.path.join(tmp, rel)) as it:
            entries = sorted(it, key=lambda e: os.fsencode(e.name))
        for e in entries:
            name = f"{rel}/{e.name}" if rel else e.name
            yield name
            if e.is_dir(follow_symlinks=False):
                yield from walk(name)

    try:
        export_rootfs(system, image_id, tmp)
        with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            for name in walk(""):
                tf.add(os.path.join(tmp, name), arcname=name, recursive=False, filter=clean)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
