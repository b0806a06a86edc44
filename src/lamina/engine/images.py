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
    from lamina.transfer.pull import pull_if_missing

    return pull_if_missing(system, name, progress=progress, platform=platform, notice=notice)


def pull(system, ref, *, progress, platform: str | None = None):
    """Pull `ref` (a Reference, or a name that gets docker's default `:latest`)
    into the store; returns the transfer's PullResult (image_id, digest, updated)."""
    from lamina.transfer.pull import pull_image

    return pull_image(system, _reference(ref), progress=progress, platform=platform)


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
    from lamina.image import Image

    record = _resolve_as_daemon(system, name)
    image = Image.load(system, record.id)  # its config read once, for history and layer sizes
    entries = image.history
    sizes = _layer_sizes(system, image)
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


def _layer_sizes(system, image) -> list[int]:
    out = []
    for diff_id, chain in zip(image.diff_ids, image.chain_ids):
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
    from lamina.image import Image

    if isinstance(record, str):
        record = system.images.resolve(record)
    image = Image.load(system, record.id)
    config = image.config
    tags = [familiar(t) for t in sorted(system.images.tags_of(record.id))]  # as docker's reference store
    digests = [familiar(d) for d in system.images.digests_of(record.id)]
    last_tag = system.db.execute("SELECT MAX(tagged) FROM tags WHERE image_id=?", (str(record.id),)).fetchone()[0]
    return {
        "Id": str(record.id),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": record.parent or "",
        "Comment": _comment(config),
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
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in image.diff_ids]},
        "Metadata": {"LastTagTime": rfc3339(last_tag) if last_tag else "0001-01-01T00:00:00Z"},
    }


def _comment(config: dict) -> str:
    """The image's comment, else its last history entry's: where docker's commit
    keeps `-m` (the config has no `comment`)."""
    if config.get("comment"):
        return config["comment"]
    history = config.get("history") or []
    return (history[-1].get("comment") or "") if history else ""


def familiar(name: str) -> str:
    """A stored `name:tag` or `name@digest` as docker shows it (`busybox:latest`)."""
    from lamina.reference import parse

    if "@" in name:
        repo, _, digest = name.partition("@")
        return f"{parse(repo).familiar_repository}@{digest}"
    return parse(name).familiar


def _resolve_as_daemon(system, name: str):
    """resolve() as dockerd answers for a name the CLI sent unparsed: its reference error,
    and its not-found text naming the reference it parsed (`No such image: busybox:latest`)."""
    from lamina.errors import InvalidReference, NoSuchImage

    try:
        return system.images.resolve(name)
    except InvalidReference as e:
        e.daemon = True  # the name went to the daemon as is: its parse refused it
        raise
    except NoSuchImage:
        try:
            shown = familiar(name)
        except InvalidReference:
            shown = name
        raise NoSuchImage(shown) from None


def tag(system, source: str, target: str) -> None:
    """`docker tag SOURCE TARGET`: both references checked (source first, as docker's
    client) before the source is looked up."""
    from lamina.errors import InvalidReference
    from lamina.quoting import go_quote
    from lamina.reference import parse

    def checked(name: str):
        try:
            return parse(name)
        except InvalidReference as e:
            raise InvalidReference(f"Error parsing reference: {go_quote(name)} "
                                   f"is not a valid repository/tag: {e}") from None

    if not source.startswith("sha256:"):  # an image ID is a valid source too
        checked(source)
    ref = checked(target)
    system.images.tag(_resolve_as_daemon(system, source).id, ref)


def remove(system, name: str, *, force: bool = False, prune: bool = True) -> list[str]:
    """DELETE /images/{name}: the `Untagged: …` / `Deleted: …` lines docker prints."""
    from lamina.errors import InvalidReference
    from lamina.gc import remove_image

    try:
        return remove_image(system, name, force=force, prune=prune)
    except InvalidReference as e:
        e.daemon = True  # docker's rmi sends the name as is: the daemon's parse refuses it
        raise


def tag_references(repository: str | None) -> tuple:
    """The Reference a REPOSITORY[:TAG] argument names (none when not given), checked
    before any work starts."""
    from lamina.reference import parse

    return (parse(repository),) if repository else ()


def import_image(system, stream, *, repository: str | None = None, message: str = "", changes=(),
                 source: str = "-"):
    """`docker import`: a rootfs tarball (any compression) as a one-layer image; its ID."""
    from lamina.builder.configchanges import change_editor
    from lamina.imageops import import_tarball

    tags = tag_references(repository)
    return import_tarball(system, stream, source=source, message=message, edit_config=change_editor(changes),
                          tags=tags)


def save(system, names: list[str], fd: int) -> None:
    """`docker save`: the images as one docker-archive tar written to `fd`."""
    from lamina.transfer.save import save as save_images

    save_images(system, names, fd)


def load(system, stream, *, progress) -> list:
    """`docker load`: the images of a docker-archive or OCI-layout tar; the Loaded records."""
    from lamina.transfer.load import load as load_images

    return load_images(system, stream, progress)
