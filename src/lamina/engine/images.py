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


def pull(system, ref, *, progress, platform: str | None = None, credentials=None):
    """Pull `ref` (a Reference, or a name that gets docker's default `:latest`)
    into the store; returns the transfer's PullResult (image_id, digest, updated).
    `credentials`: what has `.get(domain)` (remote.auth.DockerConfig's), else the user's."""
    from lamina.engine.journal import record
    from lamina.transfer.pull import pull_image

    ref = _reference(ref)
    result = pull_image(system, ref, progress=progress, platform=platform, config=credentials)
    record(system, "image", "pull", ref.familiar, {"name": ref.familiar_repository})
    return result


def push(system, ref, *, progress, compression: str = "gzip", credentials=None):
    """Push the local image `ref` to its registry; returns the PushResult (digest, size)."""
    from lamina.transfer.compress import check_compression
    from lamina.transfer.push import Pusher

    from lamina.engine.journal import record

    ref = _reference(ref)
    result = Pusher(system, progress, compression=check_compression(compression), config=credentials).push(ref)
    record(system, "image", "push", ref.familiar, {"name": ref.familiar_repository})
    return result


def _reference(ref):
    if isinstance(ref, str):
        from lamina.reference import parse

        return parse(ref)
    return ref


def list_images(system, *, repository: str | None = None, all: bool = False, digests: bool = False) -> list:
    """(repository, tag, digest, record) rows as `docker images` lists them: one per
    tag, `<none>` for untagged images (intermediate ones only with `all`), the
    repo digest when `digests` (or `repository`) asks for it (engine/imagelist.py:
    `lamina images` reads its rows without this module or the image store)."""
    from lamina.engine.imagelist import image_rows

    rows = image_rows(system, repository=repository, all=all, digests=digests)
    records = {str(rec.id): rec for rec in system.images.list()} if rows else {}
    return [(repo, tag, digest, records[image_id]) for repo, tag, digest, image_id, *_ in rows if image_id in records]


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
    """GET /images/{name}/json's document for a record or a name (engine/imageinspect.py:
    `lamina inspect IMAGE` reads it without this module)."""
    from lamina.engine.imageinspect import inspect_image

    return inspect_image(system, record)


def familiar(name: str) -> str:
    """A stored `name:tag` or `name@digest` as docker shows it (`busybox:latest`)."""
    from lamina.engine.imageinspect import familiar

    return familiar(name)


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
    image_id = _resolve_as_daemon(system, source).id
    system.images.tag(image_id, ref)
    from lamina.transfer.multiplatform import retag

    retag(system, source, ref)  # a multi-platform source: the new tag stands for its index too
    from lamina.engine.journal import record

    record(system, "image", "tag", str(image_id), {"name": ref.familiar})


def remove(system, name: str, *, force: bool = False, prune: bool = True) -> list[str]:
    """DELETE /images/{name}: the `Untagged: …` / `Deleted: …` lines docker prints."""
    from lamina.errors import InvalidReference
    from lamina.gc import remove_image

    try:
        image_id = str(system.images.resolve(name).id)
        lines = remove_image(system, name, force=force, prune=prune)
    except InvalidReference as e:
        e.daemon = True  # docker's rmi sends the name as is: the daemon's parse refuses it
        raise
    from lamina.engine.journal import record

    for line in lines:  # dockerd logs an untag per removed name, a delete per deleted image
        action, _, what = line.partition(": ")
        if action == "Untagged":
            record(system, "image", "untag", image_id, {"name": image_id})
        elif action == "Deleted":
            record(system, "image", "delete", what, {"name": what})
    return lines


def tag_references(repository: str | None) -> tuple:
    """The Reference a REPOSITORY[:TAG] argument names (none when not given), checked
    before any work starts."""
    from lamina.reference import parse

    return (parse(repository),) if repository else ()


def import_image(system, stream, *, repository: str | None = None, message: str = "", changes=(),
                 source: str = "-", platform: str | None = None):
    """`docker import`: a rootfs tarball (any compression) as a one-layer image; its ID.
    `platform` (--platform linux/arm64): the architecture, os and variant its config records."""
    from lamina.builder.configchanges import change_editor
    from lamina.imageops import import_tarball

    from lamina.engine.journal import record

    tags = tag_references(repository)
    edit = change_editor(changes)
    if platform:
        edit = _with_platform(edit, platform)
    image_id = import_tarball(system, stream, source=source, message=message, edit_config=edit, tags=tags)
    record(system, "image", "import", str(image_id), {"name": str(image_id)})
    return image_id


def _with_platform(edit, text: str):
    from lamina.transfer.platforms import parse_platform

    plat = parse_platform(text)

    def apply(config: dict) -> None:
        if edit is not None:
            edit(config)
        config["architecture"], config["os"] = plat.architecture, plat.os
        if plat.variant:
            config["variant"] = plat.variant

    return apply


def save(system, names: list[str], fd: int) -> None:
    """`docker save`: the images as one docker-archive tar written to `fd`."""
    from lamina.transfer.save import save as save_images

    save_images(system, names, fd)


def load(system, stream, *, progress) -> list:
    """`docker load`: the images of a docker-archive or OCI-layout tar; the Loaded records."""
    from lamina.engine.journal import record
    from lamina.transfer.load import load as load_images

    loaded = load_images(system, stream, progress)
    for image in loaded:
        for ref in image.tags or (None,):  # dockerd: one load event per tag, or the ID
            record(system, "image", "load", ref.familiar if ref else str(image.image_id),
                   {"name": ref.familiar if ref else str(image.image_id)})
    return loaded


def prune(system, *, dangling_only: bool = True) -> tuple[list[str], int]:
    """`docker image prune`: remove dangling images (untagged, no child, no container),
    every image no container uses with `dangling_only` false; (docker's lines, bytes freed)."""
    from lamina.engine.imagelist import index_members
    from lamina.errors import LaminaError

    used = {c.image_id for c in system.containers.list()}
    lines: list[str] = []
    reclaimed = 0
    used |= index_members(system)  # the other platforms of a multi-platform tag are not dangling
    for rec in system.images.list():
        image_id = str(rec.id)
        if image_id in used or system.images.children(rec.id):
            continue
        if dangling_only and system.images.tags_of(rec.id):
            continue
        try:
            removed = remove(system, image_id, force=not dangling_only)
        except LaminaError:
            continue  # gone meanwhile, or used by now: as docker, the prune goes on
        lines += removed
        reclaimed += rec.size
    return lines, reclaimed



def check_login(server: str, username: str, secret: str) -> str:
    """POST /auth (docker login through the Engine API): the credentials checked against
    the registry `server` names, nothing stored (the client keeps them); its domain."""
    from lamina.remote.auth import Credentials
    from lamina.remote.hosts import normalize_server
    from lamina.remote.login import verify_login

    domain = normalize_server(server or "")
    verify_login(domain, Credentials(username, secret))
    return domain


def credentials_from(auth: dict):
    """The registry credentials an Engine API request carries (X-Registry-Auth's
    {username, password, identitytoken}) for pull and push (`credentials=`): dockerd uses
    only what the client sends, never its own user's config.json."""
    return _RequestCredentials(auth)


class _RequestCredentials:
    """remote.auth.DockerConfig's `.get(domain)`, answered from one request's auth."""

    def __init__(self, auth: dict) -> None:
        self._auth = auth

    def get(self, domain: str):
        from lamina.remote.auth import TOKEN_USERNAME, Credentials

        if self._auth.get("identitytoken"):
            return Credentials(TOKEN_USERNAME, self._auth["identitytoken"])
        if self._auth.get("username"):
            return Credentials(self._auth["username"], self._auth.get("password") or "")
        return None

