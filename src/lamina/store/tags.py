"""Which image a name gives: the `tags` and `repo_digests` rows a reference looks up.

Kept apart from the image store (store/images.py), whose imports (the OCI documents,
the content store) `ps` does not need: it asks this for every container it lists.
"""

from __future__ import annotations

from lamina.errors import InvalidReference
from lamina.reference import is_id_prefix, parse


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
