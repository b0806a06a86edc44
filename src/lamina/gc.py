"""Removing images and reclaiming what no image uses any more.

Rows go first (one transaction each), files after: a crash in between leaves
unreferenced files, which the next sweep (or `system prune`) removes, never a
row pointing at missing files.
"""

from __future__ import annotations

from lamina import oci
from lamina.digest import Digest, chain_ids
from lamina.errors import Conflict, InvalidReference, NoSuchImage
from lamina.reference import parse
from lamina.store.db import transaction


def remove_image(system, name: str, *, force: bool = False, prune: bool = True) -> list[str]:
    """`docker rmi NAME`: untag, delete when nothing else refers to it; returns the lines docker prints."""
    record = system.images.resolve(name)
    tags = sorted(system.images.tags_of(record.id))  # docker's reference store lists them sorted
    by_tag = _names_tag(name, tags)
    users = system.containers.using_image(str(record.id))
    out: list[str] = []

    if by_tag is not None and len(tags) > 1:
        system.images.untag(parse(by_tag))
        return [f"Untagged: {parse(by_tag).familiar}"]
    if users and not force:
        c = users[0]
        if by_tag:
            raise Conflict(f'conflict: unable to remove repository reference "{name}" (must force) - container '
                           f"{c.short_id} is using its referenced image {record.id.short}")
        if not c.running:  # by ID: docker's image-delete conflict check (a running one: below)
            raise Conflict(f"conflict: unable to delete {record.id.short} (must be forced) - "
                           f"image is being used by stopped container {c.short_id}")
    if any(u.running for u in users):
        raise Conflict(f"conflict: unable to delete {record.id.short} (cannot be forced) - "
                       f"image is being used by running container {users[0].short_id}")
    if by_tag is None and len(tags) > 1 and not force:
        raise Conflict(f"conflict: unable to delete {record.id.short} (must be forced) - "
                       "image is referenced in multiple repositories")
    if system.images.children(record.id):
        for t in tags:
            system.images.untag(parse(t))
            out.append(f"Untagged: {parse(t).familiar}")
        if out:
            return out
        raise Conflict(f"conflict: unable to delete {record.id.short} (cannot be forced) - "
                       "image has dependent child images")
    # one sorted list of tags and digests, as docker's reference store gives them
    for t in sorted(tags + system.images.digests_of(record.id)):
        if "@" in t:
            repo, _, digest = t.partition("@")
            out.append(f"Untagged: {parse(repo).familiar_repository}@{digest}")
        else:
            system.images.untag(parse(t))
            out.append(f"Untagged: {parse(t).familiar}")
    if users:  # forced: the image stays for its containers, untagged
        return out
    out += _delete_chain(system, record, prune)
    return out


def _names_tag(name: str, tags: list[str]) -> str | None:
    """The tag `name` refers to, if the user named a tag rather than an ID."""
    try:
        ref = parse(name)
    except InvalidReference:
        return None
    return ref.name if ref.name in tags else None


def _delete_chain(system, record, prune: bool) -> list[str]:
    """Delete `record` and its untagged unused parents.  The lines come in docker's
    order: each image, then the layers (chain IDs, top first) that it was the last
    deleted image to hold, unpacked here or not."""
    deleted: list[tuple[str, list[str]]] = []  # (image id, its chain ids top first)
    chains: set[str] = set()
    blobs: set[str] = set()
    while record is not None:
        c, _, b = _owned(system, [record])
        chains |= c
        blobs |= b
        deleted.append((str(record.id), _chains_top_first(system, record)))
        system.images.delete(record.id)
        with transaction(system.db) as db:
            db.execute("DELETE FROM build_cache WHERE image_id=?", (str(record.id),))
        parent = None
        if prune and record.parent:
            try:
                candidate = system.images.get(Digest(record.parent))
            except NoSuchImage:
                candidate = None
            if (candidate is not None and not system.images.tags_of(candidate.id)
                    and not system.images.children(candidate.id)
                    and not system.containers.using_image(str(candidate.id))):
                parent = candidate
        record = parent
    kept, _, _ = _owned(system, system.images.list())
    last_holder = {c: i for i, (_, ids) in enumerate(deleted) for c in ids}
    out = []
    for i, (image_id, ids) in enumerate(deleted):
        out.append(f"Deleted: {image_id}")
        out += [f"Deleted: {c}" for c in ids if c not in kept and last_holder[c] == i]
    sweep(system, only_chains=chains, only_blobs=blobs)
    return out


def _chains_top_first(system, record) -> list[str]:
    try:
        ids = oci.diff_ids(system.images.config(record.id))
    except Exception:  # a damaged image: the sweep still removes what it can
        return []
    return [str(c) for c in reversed(chain_ids(ids))]


def _owned(system, records) -> tuple[set[str], set[str], set[str]]:
    """(chain ids, diff ids, blob digests) that these images use."""
    chains: set[str] = set()
    diffs: set[str] = set()
    blobs: set[str] = set()
    for rec in records:
        blobs.add(str(rec.id))
        blobs.add(str(rec.manifest))
        try:
            config = system.images.config(rec.id)
            manifest = system.images.manifest(rec)
        except Exception:  # a damaged image keeps what it has; `system check` reports it
            continue
        ids = oci.diff_ids(config)
        diffs.update(str(d) for d in ids)
        chains.update(str(c) for c in chain_ids(ids))
        blobs.update(layer["digest"] for layer in manifest.get("layers", []))
    for diff_id in diffs:
        blobs.update(str(d.digest) for d in system.images.blob_for_diff_id(Digest(diff_id)))
    return chains, diffs, blobs


def sweep(system, *, only_chains: set[str] | None = None, only_blobs: set[str] | None = None) -> list[str]:
    """Remove layers and blobs no image refers to; returns removed chain ids.

    `rmi` limits the sweep to what the deleted images used; `system prune` sweeps
    everything.  Either way, what the live leases of other commands protect (a
    pull, load, build… that has not published its image yet) is kept."""
    with system.leases.sweeping(system.db) as (leased_blobs, leased_chains):
        # leases first, images second: a writer publishes its image before it ends
        # its lease, so whatever it made is in one reading or the other
        chains, diffs, blobs = _owned(system, system.images.list())
        chains |= leased_chains
        blobs |= leased_blobs
        blobs |= {r[0] for r in system.db.execute("SELECT digest FROM image_indexes")}  # multi-platform tags' indexes
        removed = []
        for layer in system.layers.all():
            key = str(layer.chain_id)
            if key not in chains and (only_chains is None or key in only_chains):
                system.layers.remove(layer.chain_id)
                removed.append(key)
        with transaction(system.db) as db:
            rows = db.execute("SELECT DISTINCT diff_id FROM layer_blobs").fetchall()
            for (diff_id,) in rows:
                if diff_id not in diffs:
                    doomed = [r[0] for r in db.execute("SELECT digest FROM layer_blobs WHERE diff_id=?", (diff_id,))]
                    if any(d in leased_blobs for d in doomed):
                        continue
                    if only_blobs is None or any(d in only_blobs for d in doomed):
                        if only_blobs is not None:
                            only_blobs.update(doomed)
                        db.execute("DELETE FROM layer_blobs WHERE diff_id=?", (diff_id,))
        for digest in (system.content.walk() if only_blobs is None else [Digest(b) for b in only_blobs]):
            if str(digest) not in blobs:
                system.content.delete(digest)
    return removed
