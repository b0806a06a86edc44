"""`load`: images from a `docker save` archive (moby ≥ 25 or the v20.10 layout)
or from an OCI image layout archive; the archive may itself be compressed.

The archive is read once, as a stream (stdin works): small members are kept in
memory, big ones go to ingest files of the content store while they are hashed
and are committed only if an image refers to them (one the store holds already
is hashed and compared with it instead of written again: reuse.py).  Member
names that leave the archive root are refused; symlinks (v20.10 links
duplicate layers) are resolved inside the archive.  Every layer is checked against its diff_id
(unpacking does it, or a decompress-and-hash pass) before the image is
published; a failure leaves no image and no unverified blob.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import BinaryIO

from lamina import oci
from lamina.digest import Digest
from lamina.errors import DigestMismatch, InvalidArchive, LaminaError
from lamina.reference import Reference
from lamina.store.content import BlobWriter
from lamina.transfer import manifests
from lamina.transfer.archived import ArchivedImage, docker_images, multi_platform, oci_images
from lamina.transfer.install import Installer, plan_layers
from lamina.transfer.progress import Progress

MAX_ENTRIES = 100_000
SMALL = oci.MAX_DOCUMENT        # members up to 4 MiB (any config) stay in memory…
MAX_SMALL_TOTAL = 512 << 20     # …up to this much in all
MAX_LINK_DEPTH = 16
LAYER_TYPES = {"tar": oci.OCI_LAYER, "gzip": oci.OCI_LAYER_GZIP, "zstd": oci.OCI_LAYER_ZSTD}


@dataclass(frozen=True)
class Loaded:
    image_id: Digest
    tags: tuple[Reference, ...]
    replaced: dict


class Archive:
    """The members of a tar stream: small ones in memory, big ones as uncommitted blobs."""

    def __init__(self, system) -> None:
        self.content = system.content
        self.small: dict[str, bytes] = {}
        self.big: dict[str, BlobWriter] = {}
        self.heads: dict[str, bytes] = {}
        self.links: dict[str, str] = {}
        self.committed: dict[str, Digest] = {}
        self.early: dict = {}  # name -> EarlyUnpack: a big member unpacked as it was read
        self._tmp_dir = system.tmp_dir
        self._db = system.db

    def read(self, stream: BinaryIO) -> None:
        import tarfile

        from lamina.archive.extract import open_layer_stream
        from lamina.archive.tarformat import StrictTarInfo
        from lamina.archive.tarstream import open_tar

        entries, small_total = 0, 0
        try:
            with open_tar(open_layer_stream(stream), StrictTarInfo) as tf:
                while (ti := tf.next()) is not None:
                    tf.members = []
                    entries += 1
                    if entries > MAX_ENTRIES:
                        raise InvalidArchive(f"archive has more than {MAX_ENTRIES} entries")
                    name = member_name(ti.name)
                    self._forget(name)  # a later entry of the same name replaces the earlier one
                    if ti.issym() or ti.islnk():
                        target = ti.linkname if ti.islnk() else posixpath.join(posixpath.dirname(name), ti.linkname)
                        self.links[name] = scoped(target)
                    elif ti.isreg():
                        f = tf.extractfile(ti) if ti.sparse is not None else tf.fileobj.member(ti.size)
                        if ti.size <= SMALL:
                            small_total += ti.size
                            if small_total > MAX_SMALL_TOTAL:
                                raise InvalidArchive("archive has too many small files")
                            self.small[name] = _read_all(f, ti.size)
                        else:
                            self._spool(name, f, ti.size)
        except tarfile.TarError as e:
            raise InvalidArchive(f"invalid tar archive: {e}") from None

    def _forget(self, name: str) -> None:
        self.small.pop(name, None)
        self.links.pop(name, None)
        old = self.big.pop(name, None)
        if old is not None:
            old.abort()
        early = self.early.pop(name, None)
        if early is not None:
            early.discard()

    def _spool(self, name: str, f, size: int) -> None:
        """Store a big member (most likely a layer) and, in the same pass, unpack it
        into a staging dir (early.py) that becomes the layer once its diff_id is known.
        A member that is probably a layer the store has is only checked against the
        stored blob (reuse.py): neither written again nor unpacked."""
        from lamina.transfer.early import EarlyUnpack

        candidate = self._stored_layer_blob(name, size)
        if candidate is not None:
            from lamina.transfer.reuse import ReusingWriter

            w = self.big[name] = ReusingWriter(self.content, candidate)
            head = b""
            while chunk := f.read(1 << 20):
                head = head or chunk[:8]
                w.write(chunk)
            self.heads[name] = head
            return
        w = self.big[name] = self.content.writer()
        early = self.early[name] = EarlyUnpack.copying(self._tmp_dir, f, w)
        self.heads[name] = early.head

    def _stored_layer_blob(self, name: str, size: int) -> Digest | None:
        """The stored blob of a complete layer the member probably is (then unpacking
        or writing it again would be wasted): its name is its digest (OCI and docker
        25 layouts), or a stored layer blob has exactly its size (v20 layout, where
        the name says nothing).  A wrong guess only costs time: the member is then
        stored as it is read, and unpacked from its verified blob later."""
        parts = name.split("/")
        known = "sha256:" + parts[2] if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] else ""
        rows = self._db.execute(
            "SELECT b.digest FROM layer_blobs b JOIN layers l ON l.diff_id = b.diff_id AND l.complete = 1 "
            "WHERE b.digest = ? OR b.size = ? ORDER BY b.digest = ? DESC LIMIT 4", (known, size, known)).fetchall()
        digests = [r[0] for r in rows]
        if known and known not in digests and self._db.execute(
                "SELECT 1 FROM layers WHERE diff_id = ? AND complete = 1 LIMIT 1", (known,)).fetchone():
            digests.insert(0, known)  # a plain layer: its blob digest is its diff_id
        for d in digests:
            try:
                digest = Digest(d)
                if self.content.has(digest) and self.content.size(digest) == size:
                    return digest
            except LaminaError:  # a malformed row or a blob gone meanwhile: not a candidate
                continue
        return None

    def early_tree(self, path: str, diff_id: Digest, blob_digest: Digest) -> tuple[str, int] | None:
        """The member's tree unpacked while it was read, when it is the layer `diff_id`."""
        early = self.early.get(self.resolve(path))
        return early.take(diff_id, blob_digest) if early is not None else None

    def resolve(self, path: str) -> str:
        name = scoped(path)
        for _ in range(MAX_LINK_DEPTH):
            if name in self.small or name in self.big:
                return name
            if name not in self.links:
                raise InvalidArchive(f"{path}: no such file in the archive")
            name = self.links[name]
        raise InvalidArchive(f"{path}: too many levels of links in the archive")

    def document(self, path: str, what: str) -> bytes:
        name = self.resolve(path)
        if name not in self.small or len(self.small[name]) > oci.MAX_DOCUMENT:
            raise InvalidArchive(f"{what} {path} is larger than 4 MiB")
        return self.small[name]

    def head(self, path: str) -> bytes:
        name = self.resolve(path)
        return self.small[name][:8] if name in self.small else self.heads.get(name, b"")

    def commit(self, path: str) -> tuple[Digest, int]:
        """Make the member a blob (once); returns its digest and size."""
        name = self.resolve(path)
        if name not in self.committed:
            if name in self.small:
                self.committed[name] = self.content.put_bytes(self.small[name])
            else:
                self.committed[name] = self.big[name].commit()
        digest = self.committed[name]
        return digest, self.content.size(digest)

    def close(self) -> None:
        for name, w in self.big.items():
            if name not in self.committed:
                w.abort()
        for early in self.early.values():
            early.discard()  # the trees not moved in as layers


def _read_all(f, size: int) -> bytes:
    parts = []
    while size and (data := f.read(size)):
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


def member_name(name: str) -> str:
    """A member's name, refused when it is absolute or climbs out of the archive."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise InvalidArchive(f"archive entry {name[:200]!r} is outside the archive")
    return "/".join(parts)


def scoped(path: str) -> str:
    """A path named inside the archive (manifest or link target), kept inside it."""
    return posixpath.normpath("/" + path).lstrip("/")


# -- loading ------------------------------------------------------------------------------
def load(system, stream: BinaryIO, progress: Progress) -> list[Loaded]:
    archive = Archive(system)
    try:
        with system.lease("load"):
            archive.read(stream)
            if multi_platform(archive):
                images = oci_images(archive)
            elif "manifest.json" in archive.small or "manifest.json" in archive.links:
                images = docker_images(archive)
            elif "index.json" in archive.small:
                images = oci_images(archive)
            else:
                raise InvalidArchive("not an image archive: it has neither manifest.json nor index.json")
            installer = Installer(system, progress, unpacking="Loading layer", done=None)
            loaded = [_install(system, archive, installer, img) for img in images]
            _tag_indexes(system, images, loaded)
            # the other platforms' images are the tag's too: not listed as untagged ones
            return [done for img, done in zip(images, loaded) if done.tags or not img.index_tags]
    finally:
        archive.close()


def _install(system, archive: Archive, installer: Installer, img: ArchivedImage) -> Loaded:
    raw_config = archive.document(img.config, "config")
    try:
        config = oci.loads_document(raw_config, f"config {img.config}")
    except LaminaError as e:
        raise InvalidArchive(str(e)) from None
    diff_ids = oci.diff_ids(config)
    if len(diff_ids) != len(img.layers):
        raise InvalidArchive(f"config {img.config} lists {len(diff_ids)} diff_ids for {len(img.layers)} layers")
    if config.get("os", "linux") != "linux":
        raise InvalidArchive(f"cannot load a {config.get('os')!r} image on linux")
    descs = [_layer_blob(system, archive, img, i, diff_id) for i, diff_id in enumerate(diff_ids)]
    keep_manifest = img.manifest if [d.media_type for d in descs] == list(img.layer_types) else None
    plans = plan_layers(system, descs, diff_ids)
    sizes = []
    for i, p in enumerate(plans):
        try:
            tree = archive.early_tree(img.layers[i], p.diff_id, p.desc.digest) if p.unpack else None
            if tree is not None:
                sizes.append(installer.adopt(plans, i, *tree))
            elif p.unpack:
                sizes.append(installer.unpack(plans, i))
            else:
                sizes.append(installer.size(p, installer.verify(p) if p.verify else None))
        except DigestMismatch as e:
            _drop(system, p.desc.digest)
            raise InvalidArchive(f"layer {i} ({img.layers[i]}): {e}") from None
    done = installer.publish(raw_config, plans, sizes, tags=img.tags, raw_manifest=keep_manifest)
    return Loaded(done.image_id, img.tags, done.replaced)


def _tag_indexes(system, images: list[ArchivedImage], loaded: list[Loaded]) -> None:
    """Each multi-platform tag stands for the index of its members as loaded (the tag
    itself names the host's member, as a `build --platform a,b` leaves it)."""
    from lamina.transfer.multiplatform import make_index, tag_index

    groups: dict[Reference, list[Digest]] = {}
    for img, done in zip(images, loaded):
        for ref in img.index_tags:
            groups.setdefault(ref, []).append(done.image_id)
    for ref, ids in groups.items():
        tag_index(system, ref, make_index(system, ids) if len(ids) > 1 else None)


def _layer_blob(system, archive: Archive, img: ArchivedImage, i: int, diff_id: Digest) -> oci.Descriptor:
    """Store layer i's member as a blob; plain tars must hash to their diff_id, bzip2
    and xz layers (which docker load accepts) are stored decompressed."""
    from lamina.archive.compression import sniff

    path = img.layers[i]
    kind = sniff(archive.head(path))
    digest, size = archive.commit(path)
    if kind in ("bzip2", "xz"):
        from lamina.archive.extract import open_layer_stream

        try:
            with system.content.open(digest) as f:
                plain = system.content.put_stream(open_layer_stream(f), expected=diff_id)
        except DigestMismatch:
            raise InvalidArchive(f"invalid diffID for layer {i}: content of {path} does not match {diff_id}") from None
        finally:
            _drop(system, digest)
        digest, size, kind = plain, system.content.size(plain), "tar"
    if kind == "tar" and digest != diff_id:
        _drop(system, digest)
        raise InvalidArchive(f"invalid diffID for layer {i}: expected {diff_id}, got {digest}")
    media_type = LAYER_TYPES[kind]
    if img.layer_types and manifests.LAYER_TYPES.get(img.layer_types[i]) == ("" if kind == "tar" else kind):
        media_type = img.layer_types[i]  # the archive's own label, when it tells the truth
    return oci.Descriptor(media_type, digest, size)


def _drop(system, digest: Digest) -> None:
    """Remove a blob we just stored that proved wrong, unless an image uses it."""
    from lamina.gc import sweep

    try:
        sweep(system, only_chains=set(), only_blobs={str(digest)})
    except LaminaError:
        pass
