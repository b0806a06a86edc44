"""`docker images`' rows, straight from the store's tables.

Apart from engine/images.py (as engine/imageinspect.py is) so that `lamina images`
reads the `images`, `tags` and `repo_digests` rows and prints them, importing
neither the image store, the OCI documents, the content store nor the reference
parser: its whole run is a few ms, and docker's CLI answers in ~15.
"""

from __future__ import annotations

def image_rows(system, *, repository: str | None = None, all: bool = False, digests: bool = False) -> list:
    """(repository, tag, digest, image id, created, size) as `docker images` lists them,
    newest first: one per tag, `<none>` for untagged images (intermediate ones, and the
    other platforms of a multi-platform tag, only with `all`), the repo digest when
    `digests` (or `repository`) asks for it."""
    db = system.db
    want = None
    if repository:
        from lamina.reference import parse

        want = parse(repository, default_tag=False)  # InvalidReference: the caller lists nothing
    images = db.execute("SELECT id, parent, created, size FROM images ORDER BY created DESC, added DESC").fetchall()
    tags: dict[str, list[str]] = {}
    for name, image_id in db.execute("SELECT name, image_id FROM tags ORDER BY name"):
        tags.setdefault(image_id, []).append(name)
    repo_digests: dict[str, list[str]] = {}
    if digests or want is not None:
        for name, image_id in db.execute("SELECT name, image_id FROM repo_digests ORDER BY name"):
            repo_digests.setdefault(image_id, []).append(name)
    parents = {parent for _, parent, _, _ in images if parent}
    members = None
    rows = []
    for image_id, _, created, size in images:
        names = tags.get(image_id)
        found = repo_digests.get(image_id, ())
        if not names:
            if want is not None:
                continue
            if not all:  # untagged parents of tagged images (and other platforms of one) are "intermediate"
                if image_id in parents:
                    continue
                if members is None:
                    members = index_members(system)
                if image_id in members:
                    continue
            digest = found[0].split("@", 1)[1] if found else "<none>"
            rows.append(("<none>", "<none>", digest, image_id, created, size))
            continue
        for name in names:
            repository_name, _, tag = name.rpartition(":")  # a stored tag is always `domain/path:tag`
            if want is not None and (repository_name != want.repository or (want.tag and tag != want.tag)):
                continue
            digest = next((d.split("@", 1)[1] for d in found if d.startswith(repository_name + "@")), "<none>")
            rows.append((familiar_repository(repository_name), tag, digest, image_id, created, size))
    return rows


def familiar_repository(repository: str) -> str:
    """A stored (normalised) repository as docker prints it: Reference.familiar_repository's
    rule on the text, which is what reference.parse would split it into (`docker.io/library/x`
    -> `x`, `docker.io/a/b` -> `a/b`, `host:5000/x` as is)."""
    if not repository.startswith("docker.io/"):
        return repository
    path = repository[len("docker.io/"):]
    return path[len("library/"):] if path.startswith("library/") else path


def index_members(system) -> set[str]:
    """IDs of the images that tagged multi-platform indexes name (store/indexes.py), read
    only when there is such an index."""
    if system.db.execute("SELECT 1 FROM image_indexes i JOIN tags t ON t.name = i.name LIMIT 1").fetchone() is None:
        return set()
    from lamina.store.indexes import IndexStore

    return IndexStore(system.db, system.content).member_images()
