"""Which image a name gives: the `tags` and `repo_digests` rows a reference looks up.

Kept apart from the image store (store/images.py), whose imports (the OCI documents,
the content store) `ps` does not need: it asks this for every container it lists.
"""

from __future__ import annotations

from lamina.errors import InvalidReference, NoSuchImage
from lamina.reference import is_id_prefix, looks_like_id, parse

IMAGE_COLUMNS = "id, manifest, parent, created, size"


def named_image(db, text: str) -> str | None:
    """The image ID the name `text` (name[:tag] or name@digest) is recorded for, or None
    when `text` is an ID (`sha256:…`), or a name no image has.  InvalidReference when it
    is neither a name nor an ID prefix.  Docker's lookup order, a full ID first and an
    ID prefix last, is the image store's (ImageStore.resolve)."""
    if text.startswith("sha256:"):
        return None
    try:
        ref = parse(text)
    except InvalidReference:
        if not is_id_prefix(text):
            raise
        return None
    table = "repo_digests" if ref.digest and not ref.tag else "tags"
    row = db.execute(f"SELECT image_id FROM {table} WHERE name=?", (ref.name,)).fetchone()
    return None if row is None else row[0]


def image_row(db, text: str) -> tuple:
    """The `images` row (IMAGE_COLUMNS) `text` names, as docker looks an image up: a
    full ID, then a name[:tag] (or name@digest), then a unique ID prefix; NoSuchImage
    otherwise.  ImageStore.resolve makes it a record; `inspect IMAGE` reads it as is."""
    if looks_like_id(text):
        image_id = "sha256:" + text.removeprefix("sha256:")
    else:
        image_id = named_image(db, text)
    if image_id is not None:
        row = db.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            raise NoSuchImage(image_id)
        return row
    if is_id_prefix(text):
        prefix = "sha256:" + text.removeprefix("sha256:")
        rows = db.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id >= ? AND id < ? LIMIT 2",
                          (prefix, prefix + "g")).fetchall()
        if len(rows) == 1:
            return rows[0]
    raise NoSuchImage(text)
