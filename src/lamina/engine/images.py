"""Image operations: list, history, inspect, tag, remove, import, pull, push, save, load.

Each takes a `System` and plain arguments and returns records: rows of
`docker images`, history entries, the inspect document docker's Engine API
returns, the lines of docker's rmi response, transfer results.  Long work
reports through a `progress` sink (transfer.progress.Progress, or
engine.events.Events to iterate it).  Imports are inside the functions: the
`images` verb loads only what listing needs.
"""

from __future__ import annotations


def ensure_image(system, name: str, *, progress, platform: str | None = None, notice=None):
    """The image `name`, pulled first when it is not here (what run and build FROM do).
    `notice(text)` is told before the pull starts (docker's `Unable to find image`)."""
    from lamina.errors import NoSuchImage
    from lamina.reference import parse

    try:
        return system.images.resolve(name)
    except NoSuchImage:
        pass
    ref = parse(name)
    if notice is not None:
        notice(f"Unable to find image '{ref.familiar}' locally")
    result = pull(system, ref, progress=progress, platform=platform)
    return system.images.get(result.image_id)


def pull(system, ref, *, progress, platform: str | None = None):
    """Pull `ref` (a Reference, or a name that gets docker's default `:latest`)
    into the store; returns the transfer's PullResult (image_id, digest, updated)."""
    from lamina.transfer.platforms import parse_platform
    from lamina.transfer.pull import Puller

    ref = _reference(ref)
    return Puller(system, progress, platform=parse_platform(platform) if platform else None).pull(ref)


def push(system, ref, *, progress, compression: str = "gzip"):
    """Push the local image `ref` to its registry; returns the PushResult (digest, size)."""
    from lamina.transfer.compress import check_compression
    from lamina.transfer.push import Pusher

    ref = _reference(ref)
    return Pusher(system, progress, compression=check_compression(compression)).push(ref)


def _reference(ref):
    if isinstance(ref, str):
        from lamina.reference import parse

        return parse(ref)
    return ref


def list_images(system, *, repository: str | None = None, all: bool = False, digests: bool = False) -> list:
    """(repository, tag, digest, record) rows as `docker images` lists them: one per
    tag, `<none>` for untagged images (intermediate ones only with `all`), the
    repo digest when `digests` (or `repository`) asks for it."""
    from lamina.reference import parse

    tags = system.images.all_tags()
    want = parse(repository, default_tag=False) if repository else None
    rows = []
    for rec in system.images.list():
        names = tags.get(str(rec.id), [])
        repo_digests = system.images.digests_of(rec.id) if digests or want else []
        if not names:
            if want is not None or (not all and system.images.children(rec.id)):
                continue  # untagged parents of tagged images are "intermediate"
            rows.append(("<none>", "<none>", repo_digests[0].split("@", 1)[1] if repo_digests else "<none>", rec))
            continue
        for name in names:
            ref = parse(name)
            if want is not None and (ref.repository != want.repository or (want.tag and ref.tag != want.tag)):
                continue
            digest = next((d.split("@", 1)[1] for d in repo_digests if d.startswith(ref.repository + "@")),
                          "<none>")
            rows.append((ref.familiar_repository, ref.tag, digest, rec))
    return rows


def get_image(system, name: str):
    """The store's record of image `name` (tag, ID, short ID or digest); NoSuchImage if none."""
    return system.images.resolve(name)


def history(system, name: str) -> list[tuple]:
    """(image id or `<missing>`, created epoch, created_by, size, comment) per history
    entry, newest first, as `docker history` (and GET /images/{name}/history) gives them."""
    from lamina import oci

    record = system.images.resolve(name)
    config = system.images.config(record.id)
    entries = list(config.get("history") or [])
    sizes = _layer_sizes(system, record)
    ids = _history_ids(system, record, entries)
    rows = []
    layer_index = sum(1 for h in entries if not h.get("empty_layer"))
    for h, ident in zip(reversed(entries), reversed(ids)):
        if h.get("empty_layer"):
            size = 0
        else:
            layer_index -= 1
            size = sizes[layer_index] if 0 <= layer_index < len(sizes) else 0
        created = oci.parse_time(h.get("created", ""))
        by = h.get("created_by", "").replace("\t", " ")  # as docker's CreatedBy()
        rows.append((ident, created, by, size, h.get("comment", "")))
    return rows


def _layer_sizes(system, record) -> list[int]:
    from lamina import oci
    from lamina.digest import chain_ids

    out = []
    diff_ids = oci.diff_ids(system.images.config(record.id))
    for diff_id, chain in zip(diff_ids, chain_ids(diff_ids)):
        layer = system.layers.get(chain)
        if layer is not None:
            out.append(layer.size)
        else:
            blobs = system.images.blob_for_diff_id(diff_id)
            out.append(blobs[0].size if blobs else 0)
    return out


def _history_ids(system, record, history: list) -> list[str]:
    """Image ID per history entry: this image for the last entry, local parents
    (commit/build) for theirs, `<missing>` otherwise — as docker shows."""
    from lamina.digest import Digest

    ids = ["<missing>"] * len(history)
    rec, index = record, len(history) - 1
    while rec is not None and 0 <= index < len(ids):
        ids[index] = str(rec.id)
        if not (rec.parent and system.images.exists(Digest(rec.parent))):
            break
        rec = system.images.get(Digest(rec.parent))
        index = len(system.images.config(rec.id).get("history") or []) - 1
    return ids


def inspect_image(system, record) -> dict:
    """GET /images/{name}/json's document (Engine API 1.41) for a record or a name."""
    from lamina import oci
    from lamina.engine.containers import rfc3339

    if isinstance(record, str):
        record = system.images.resolve(record)
    config = system.images.config(record.id)
    tags = [familiar(t) for t in system.images.tags_of(record.id)]
    digests = [familiar(d) for d in system.images.digests_of(record.id)]
    last_tag = system.db.execute("SELECT MAX(tagged) FROM tags WHERE image_id=?", (str(record.id),)).fetchone()[0]
    return {
        "Id": str(record.id),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": record.parent or "",
        "Comment": config.get("comment", ""),
        "Created": config.get("created", ""),
        "Container": config.get("container", ""),
        "ContainerConfig": config.get("container_config") or oci.empty_container_config(),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config") or oci.empty_container_config(),
        "Architecture": config.get("architecture", ""),
        **({"Variant": config["variant"]} if config.get("variant") else {}),
        "Os": config.get("os", ""),
        "Size": record.size,
        "VirtualSize": record.size,
        "GraphDriver": {"Data": None, "Name": system.snapshotter_name},
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in oci.diff_ids(config)]},
        "Metadata": {"LastTagTime": rfc3339(last_tag) if last_tag else "0001-01-01T00:00:00Z"},
    }


def familiar(name: str) -> str:
    """A stored `name:tag` or `name@digest` as docker shows it (`busybox:latest`)."""
    from lamina.reference import parse

    if "@" in name:
        repo, _, digest = name.partition("@")
        return f"{parse(repo).familiar_repository}@{digest}"
    return parse(name).familiar


def tag(system, source: str, target: str) -> None:
    """`docker tag SOURCE TARGET` (the target is checked before the source is looked up)."""
    from lamina.reference import parse

    ref = parse(target)
    system.images.tag(system.images.resolve(source).id, ref)


def remove(system, name: str, *, force: bool = False, prune: bool = True) -> list[str]:
    """DELETE /images/{name}: the `Untagged: …` / `Deleted: …` lines docker prints."""
    from lamina.gc import remove_image

    return remove_image(system, name, force=force, prune=prune)


def tag_references(repository: str | None) -> tuple:
    """The Reference a REPOSITORY[:TAG] argument names (none when not given), checked
    before any work starts."""
    from lamina.reference import parse

    return (parse(repository),) if repository else ()


def import_image(system, stream, *, repository: str | None = None, message: str = "", changes=(),
                 source: str = "-"):
    """`docker import`: a rootfs tarball (any compression) as a one-layer image; its ID."""
    from lamina.imageops import import_tarball

    tags = tag_references(repository)
    return import_tarball(system, stream, source=source, message=message, changes=list(changes), tags=tags)


def save(system, names: list[str], fd: int) -> None:
    """`docker save`: the images as one docker-archive tar written to `fd`."""
    from lamina.transfer.save import save as save_images

    save_images(system, names, fd)


def load(system, stream, *, progress) -> list:
    """`docker load`: the images of a docker-archive or OCI-layout tar; the Loaded records."""
    from lamina.transfer.load import load as load_images

    return load_images(system, stream, progress)
