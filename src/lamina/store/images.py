"""Images and tags.

An image is its config blob (ID = sha256 of the exact bytes) plus a manifest
blob listing the layer blobs.  Blobs are written first, then one transaction
inserts the image row, its layer-blob rows and its tags, so another process
sees the whole image or nothing.
"""

from __future__ import annotations

import time

from lamina import oci
from lamina.digest import Digest
from lamina.errors import Conflict, InvalidReference, NoSuchImage, StoreError
from lamina.record import record
from lamina.reference import Reference
from lamina.store.content import ContentStore
from lamina.store.db import transaction
from lamina.store.tags import image_row

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3


@record
class ImageRecord:
    id: Digest
    manifest: Digest
    parent: str | None
    created: float
    size: int


@record
class LayerBlob:
    """One manifest layer: the blob as stored and the uncompressed diff_id."""

    descriptor: oci.Descriptor
    diff_id: Digest


class ImageStore:
    def __init__(self, conn: sqlite3.Connection, content: ContentStore) -> None:
        self._db = conn
        self._content = content

    # -- creation -----------------------------------------------------------------
    def create(self, raw_config: bytes, layers: list[LayerBlob], *, size: int, parent: str | None = None,
               tags: tuple[Reference, ...] = (), raw_manifest: bytes | None = None) -> Digest:
        """Publish an image whose layer blobs are already in the content store."""
        config = oci.loads_document(raw_config, "image config")
        for layer in layers:  # under the writer's lease, has() also keeps them until published
            if not self._content.has(layer.descriptor.digest):
                raise StoreError(f"image {Digest.of_bytes(raw_config).short}: layer blob "
                                 f"{layer.descriptor.digest} is missing from the store")
        image_id = self._content.put_bytes(raw_config)
        if raw_manifest is None:
            desc = oci.Descriptor(oci.OCI_CONFIG, image_id, len(raw_config))
            raw_manifest = oci.dumps(oci.make_manifest(desc, [l.descriptor for l in layers]))
        manifest = self._content.put_bytes(raw_manifest)
        created = oci.parse_time(config.get("created", ""))
        now = time.time()
        with transaction(self._db) as db:
            db.execute(
                "INSERT OR IGNORE INTO images(id, manifest, parent, created, size, added) VALUES (?,?,?,?,?,?)",
                (str(image_id), str(manifest), parent, created, size, now),
            )
            for layer in layers:
                db.execute(
                    "INSERT OR IGNORE INTO layer_blobs(diff_id, digest, media_type, size) VALUES (?,?,?,?)",
                    (str(layer.diff_id), str(layer.descriptor.digest), layer.descriptor.media_type, layer.descriptor.size),
                )
            for ref in tags:
                self._tag(db, image_id, ref, now)
        return image_id

    # -- tags ---------------------------------------------------------------------
    def tag(self, image_id: Digest, ref: Reference) -> None:
        with transaction(self._db) as db:
            self._tag(db, image_id, ref, time.time())

    @staticmethod
    def _tag(db: sqlite3.Connection, image_id: Digest, ref: Reference, now: float) -> None:
        if ref.digest and not ref.tag:
            raise InvalidReference(f"refusing to create a tag with a digest reference: {ref}")
        db.execute("INSERT OR REPLACE INTO tags(name, image_id, tagged) VALUES (?,?,?)", (ref.name, str(image_id), now))

    def untag(self, ref: Reference) -> Digest:
        with transaction(self._db) as db:
            row = db.execute("SELECT image_id FROM tags WHERE name=?", (ref.name,)).fetchone()
            if row is None:
                raise NoSuchImage(ref.familiar)
            db.execute("DELETE FROM tags WHERE name=?", (ref.name,))
        return Digest(row[0])

    def tags_of(self, image_id: Digest) -> list[str]:
        rows = self._db.execute("SELECT name FROM tags WHERE image_id=? ORDER BY tagged, name", (str(image_id),))
        return [r[0] for r in rows]

    def digests_of(self, image_id: Digest) -> list[str]:
        rows = self._db.execute("SELECT name FROM repo_digests WHERE image_id=? ORDER BY name", (str(image_id),))
        return [r[0] for r in rows]

    def add_repo_digest(self, image_id: Digest, name: str) -> None:
        if self._db.execute("SELECT 1 FROM repo_digests WHERE name=? AND image_id=?",
                            (name, str(image_id))).fetchone():
            return  # a pull or push of what is here already: no write transaction (and its fsync)
        with transaction(self._db) as db:
            db.execute("INSERT OR IGNORE INTO repo_digests(name, image_id) VALUES (?,?)", (name, str(image_id)))

    # -- lookup -------------------------------------------------------------------
    def get(self, image_id: Digest) -> ImageRecord:
        row = self._db.execute(
            "SELECT id, manifest, parent, created, size FROM images WHERE id=?", (str(image_id),)
        ).fetchone()
        if row is None:
            raise NoSuchImage(str(image_id))
        return _record(row)

    def exists(self, image_id: Digest) -> bool:
        return self._db.execute("SELECT 1 FROM images WHERE id=?", (str(image_id),)).fetchone() is not None

    def resolve(self, text: str) -> ImageRecord:
        """Find an image the way docker does: a full ID, then a name[:tag]
        (or name@digest), then a unique ID prefix (store/tags.py: image_row)."""
        return _record(image_row(self._db, text))

    def list(self) -> list[ImageRecord]:
        rows = self._db.execute("SELECT id, manifest, parent, created, size FROM images ORDER BY created DESC, added DESC")
        return [_record(r) for r in rows]

    def all_tags(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, image_id in self._db.execute("SELECT name, image_id FROM tags ORDER BY name"):
            out.setdefault(image_id, []).append(name)
        return out

    def children(self, image_id: Digest) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT id FROM images WHERE parent=?", (str(image_id),))]

    # -- content ------------------------------------------------------------------
    def raw_config(self, image_id: Digest) -> bytes:
        return self._content.read(image_id)

    def config(self, image_id: Digest) -> dict:
        return oci.loads_document(self.raw_config(image_id), f"config of image {image_id.short}")

    def raw_manifest(self, record: ImageRecord) -> bytes:
        return self._content.read(record.manifest)

    def manifest(self, record: ImageRecord) -> dict:
        return oci.loads_document(self.raw_manifest(record), f"manifest of image {record.id.short}")

    def layer_blobs(self, record: ImageRecord) -> list[LayerBlob]:
        """The manifest's layers paired with the config's diff_ids (verified equal in number)."""
        manifest = self.manifest(record)
        diff_ids = oci.diff_ids(self.config(record.id))
        descs = [oci.Descriptor.from_json(d) for d in manifest.get("layers", [])]
        if len(descs) != len(diff_ids):
            raise NoSuchImage(f"{record.id.short} (manifest has {len(descs)} layers, config {len(diff_ids)})")
        return [LayerBlob(d, i) for d, i in zip(descs, diff_ids)]

    def add_layer_blob(self, layer: LayerBlob) -> None:
        """Remember another blob for a diff_id (the compressed copy made for a push)."""
        with transaction(self._db) as db:
            db.execute(
                "INSERT OR IGNORE INTO layer_blobs(diff_id, digest, media_type, size) VALUES (?,?,?,?)",
                (str(layer.diff_id), str(layer.descriptor.digest), layer.descriptor.media_type, layer.descriptor.size),
            )

    def blob_for_diff_id(self, diff_id: Digest) -> list[oci.Descriptor]:
        rows = self._db.execute(
            "SELECT media_type, digest, size FROM layer_blobs WHERE diff_id=?", (str(diff_id),)
        ).fetchall()
        return [oci.Descriptor(m, Digest(d), s) for m, d, s in rows]

    # -- removal ------------------------------------------------------------------
    def delete(self, image_id: Digest) -> None:
        with transaction(self._db) as db:
            if db.execute("SELECT 1 FROM tags WHERE image_id=?", (str(image_id),)).fetchone():
                raise Conflict(f"image {image_id.short} is still tagged")
            db.execute("DELETE FROM repo_digests WHERE image_id=?", (str(image_id),))
            db.execute("UPDATE images SET parent=NULL WHERE parent=?", (str(image_id),))
            db.execute("DELETE FROM images WHERE id=?", (str(image_id),))


def _record(row) -> ImageRecord:
    return ImageRecord(Digest(row[0]), Digest(row[1]), row[2], row[3], row[4])
