"""Multi-platform images: which tags stand for an OCI index, not one image.

A `build --platform linux/amd64,linux/arm64` makes one image per platform; the tag
points at one member (the host's, else the first), so every verb that knows only
images (`images`, `inspect`, `run`) works unchanged, and `image_indexes` remembers
the index blob (in the content store) that lists every member's manifest, for
`run --platform`, `push` and `save`.
"""

from __future__ import annotations

from lamina.digest import Digest
from lamina.errors import NotFound
from lamina.store.db import transaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3

    from lamina.store.content import ContentStore


class IndexStore:
    def __init__(self, conn: sqlite3.Connection, content: ContentStore) -> None:
        self._db = conn
        self._content = content

    def put(self, name: str, raw_index: bytes) -> Digest:
        digest = self._content.put_bytes(raw_index)
        with transaction(self._db) as db:
            db.execute("INSERT OR REPLACE INTO image_indexes(name, digest) VALUES (?,?)", (name, str(digest)))
        return digest

    def get(self, name: str) -> Digest | None:
        row = self._db.execute("SELECT digest FROM image_indexes WHERE name=?", (name,)).fetchone()
        return Digest(row[0]) if row else None

    def raw(self, digest: Digest) -> bytes:
        return self._content.read(digest)

    def drop(self, name: str) -> None:
        """The tag now names one image (re-tagged or removed)."""
        with transaction(self._db) as db:
            db.execute("DELETE FROM image_indexes WHERE name=?", (name,))

    def member_images(self) -> set[str]:
        """IDs of the images the indexes of existing tags name (kept from prune, listed as
        intermediate images): a tag removed since keeps nothing."""
        from lamina import oci

        out: set[str] = set()
        rows = self._db.execute("SELECT DISTINCT i.digest FROM image_indexes i JOIN tags t ON t.name = i.name")
        for (digest,) in rows.fetchall():
            try:
                doc = oci.loads_document(self._content.read(Digest(digest)), f"index {digest}")
            except NotFound:  # swept by an older lamina: it keeps nothing
                continue
            for m in doc.get("manifests") or []:
                image_id = self.image_for_manifest(Digest(m["digest"]))
                if image_id is not None:
                    out.add(str(image_id))
        return out

    def image_for_manifest(self, manifest: Digest) -> Digest | None:
        row = self._db.execute("SELECT id FROM images WHERE manifest=?", (str(manifest),)).fetchone()
        return Digest(row[0]) if row else None
