"""Container operations: list, inspect, create, start/run, remove, diff, commit, export.

They take a `System` and plain arguments (run options as lifecycle.RunOptions)
and return the store's ContainerRecord, docker-shaped documents, changes or
exit codes.  `ps` is a hot path: nothing is imported at module level, and
listing needs nothing beyond the store.
"""

from __future__ import annotations


def list_containers(system, *, all: bool = False, latest: bool = False, filters: dict | None = None,
                    limit: int = 0) -> list:
    """Container records, newest first: running ones, or every one with `all`; only the
    newest with `latest` (docker ps -l), the `limit` newest (of any state) with a limit;
    those dockerd's `filters` ({key: [values]}: engine/containerfilters.py) let through."""
    limit = 1 if latest else max(limit, 0)
    if filters:
        from lamina.engine.containerfilters import select

        return select(system, system.containers.list(), filters, all=all, limit=limit)
    recs = [r for r in system.containers.list() if all or limit or r.running]
    return recs[:limit] if limit else recs


def listed_image(system, rec) -> str:
    """ps's IMAGE as docker's daemon picks it: the name the container was made from
    while that name still gives the container's image (not after `rmi -f` or a
    re-tag), else the image ID."""
    from lamina.errors import LaminaError

    if rec.image_ref != rec.image_id:
        # the usual case, a name, from the tags alone: the image store is not built for `ps`
        from lamina.reference import looks_like_id
        from lamina.store.tags import named_image

        try:
            named = None if looks_like_id(rec.image_ref) else named_image(system.db, rec.image_ref)
        except LaminaError:
            return rec.image_id
        if named is not None:  # what ImageStore.resolve answers, if the image is there
            found = named == rec.image_id and system.db.execute("SELECT 1 FROM images WHERE id=?", (named,)).fetchone()
            return rec.image_ref if found else rec.image_id
        try:
            if str(system.images.resolve(rec.image_ref).id) == rec.image_id:
                return rec.image_ref
        except LaminaError:
            pass
    return rec.image_id


def command_of(config: dict) -> str:
    """The daemon's Container.Command: the path, then the args (those with a space in quotes)."""
    parts = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    return " ".join(parts[:1] + [f"'{p}'" if " " in p else p for p in parts[1:]])


def summary(rec) -> dict:
    """One item of GET /containers/json (without the daemon's human Status text)."""
    return {
        "Id": rec.id, "Names": ["/" + rec.name], "Image": rec.image_ref, "ImageID": rec.image_id,
        "Command": command_of(rec.config), "Created": int(rec.created), "State": rec.state,
        "Labels": dict(rec.config.get("Labels") or {}),
        "HostConfig": {"NetworkMode": rec.host_config.get("NetworkMode", "default")},
    }


def get_container(system, name: str):
    """The record of container `name` (name, ID or unique ID prefix); NoSuchContainer if none."""
    return system.containers.resolve(name)


def inspect_container(system, rec) -> dict:
    """GET /containers/{id}/json's document (Engine API 1.41) for a record or a name."""
    from lamina.runtime.hostopts import with_defaults as with_confinement_defaults
    from lamina.runtime.resources import with_defaults as with_limit_defaults
    from lamina.network import settings as network_settings
    from lamina.units import rfc3339

    if isinstance(rec, str):
        rec = system.containers.resolve(rec)
    cfg = rec.config
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    ctr_dir = system.containers.path(rec.id)
    from lamina.engine.services import state_of

    state, restarts = state_of(system, rec)
    from lamina.engine.exec import exec_ids, is_paused  # a file read each (freezer, exec scratch dirs)

    if state.get("Running") and not state.get("Restarting") and is_paused(system, rec):
        state.update(Status="paused", Paused=True)
    health = state.pop("Health", None)  # after FinishedAt, as docker's
    return {
        "Id": rec.id,
        "Created": rfc3339(rec.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {**state, "StartedAt": rfc3339(rec.started), "FinishedAt": rfc3339(rec.finished),
                  **({"Health": health} if health is not None else {})},
        "Image": rec.image_id,
        "ResolvConfPath": f"{ctr_dir}/resolv.conf",
        "HostnamePath": f"{ctr_dir}/hostname",
        "HostsPath": f"{ctr_dir}/hosts",
        "LogPath": _log_path(rec, ctr_dir),
        "Name": "/" + rec.name,
        "RestartCount": restarts,
        "Driver": rec.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids(system, rec),
        # docker shows every limit key, zero or not, and its empty port keys
        "HostConfig": with_confinement_defaults(
            with_limit_defaults({"PortBindings": {}, "PublishAllPorts": False, **rec.host_config})),
        "GraphDriver": {"Data": {"UpperDir": f"{ctr_dir}/upper", "WorkDir": f"{ctr_dir}/work",
                                 "MergedDir": f"{ctr_dir}/rootfs"} if rec.driver == "overlay" else None,
                        "Name": rec.driver},
        "Mounts": mounts(system, rec),
        "Config": cfg,
        "NetworkSettings": network_settings(system, rec),
    }


def mounts(system, rec) -> list:
    """inspect's Mounts: binds, and volumes through lamina/volumemounts.py when it has any."""
    from lamina.lifecycle import has_volumes

    if has_volumes(rec):
        from lamina.volumemounts import inspect_mounts

        return inspect_mounts(system, rec)
    return [{"Type": "bind", "Source": b.split(":")[0], "Destination": b.split(":")[1], "Mode": "",
             "RW": not b.endswith(":ro"), "Propagation": "rprivate"} for b in rec.host_config.get("Binds") or []]


def _log_path(rec, ctr_dir: str) -> str:
    """docker's LogPath: the json-file log, set once the container has started."""
    if (rec.host_config.get("LogConfig") or {}).get("Type") != "json-file" or not rec.started:
        return ""
    from lamina.logs.options import log_path

    return log_path(ctr_dir, rec.id)


def image_for_run(system, name: str, *, pull: str = "missing", progress=None, notice=None,
                  platform: str | None = None, progress_for=None):
    """The image record to run, pulled first when missing (unless `pull` is "never");
    an invalid reference is an error, never a pull.  `platform` (run --platform): the
    member of a multi-platform tag, or an image whose config says that platform.
    `progress_for`: makes the pull's progress sink, called only when one is pulled."""
    from lamina.errors import NoSuchImage
    from lamina.reference import parse

    if pull == "always":  # docker's CLI pulls first, the image here or not (no `Unable to find image`)
        from lamina.engine.images import pull as pull_image

        pull_image(system, parse(name), progress=_progress(progress, progress_for), platform=platform)
    try:
        if platform:
            from lamina.transfer.multiplatform import image_for_platform

            return image_for_platform(system, name, platform)
        return system.images.resolve(name)
    except NoSuchImage:
        if pull == "never":
            raise
        parse(name)
    from lamina.engine.images import ensure_image

    return ensure_image(system, name, progress=_progress(progress, progress_for), notice=notice, platform=platform)


def _progress(progress, progress_for):
    """A pull's progress sink: the one given, else progress_for's, else none shown."""
    if progress is None and progress_for is not None:
        progress = progress_for()
    if progress is None:
        from lamina.transfer.progress import QuietProgress

        progress = QuietProgress()
    return progress


def platform_warning(system, record) -> str | None:
    """dockerd's create warning for an image of another platform run without --platform
    (it runs emulated: runtime/binfmt.py)."""
    from lamina import oci

    config = system.images.config(record.id)
    if not oci.foreign_arch(config):
        return None
    plat = "/".join(p for p in (config.get("os") or "linux", config["architecture"], config.get("variant")) if p)
    return (f"The requested image's platform ({plat}) does not match the detected host platform "
            f"(linux/{oci.host_arch()}) and no specific platform was requested")


def create(system, image, image_ref: str, options):
    """A new container of `image` (a record) with `options` (lifecycle.RunOptions); its record."""
    from lamina import lifecycle
    from lamina.engine.journal import record

    rec = lifecycle.create(system, image.id, image_ref, options)
    record(system, "container", "create", rec.id, {"image": image_ref, "name": rec.name})
    return rec


def start(system, rec, *, interactive: bool | None = None) -> int:
    """Run a created (or exited) container in the foreground; its exit code.  A container
    created with auto-remove is removed afterwards, as `docker start` of one does."""
    from lamina import lifecycle

    if not rec.running:  # else lifecycle.start's Conflict
        lifecycle.check_mount_sources(rec)
    code = lifecycle.start(system, rec, interactive=interactive)
    if rec.host_config.get("AutoRemove"):
        lifecycle.remove(system, system.containers.get(rec.id), force=True)
    return code


def run(system, rec) -> int:
    """Start a just-created container and wait for it (docker run's attached mode); its exit
    code.  Auto-remove happens even when starting failed."""
    from lamina import lifecycle

    clean = False
    try:
        code = lifecycle.start(system, rec)
        clean = True
        return code
    finally:
        if rec.host_config.get("AutoRemove"):
            lifecycle.remove(system, system.containers.get(rec.id), force=True, exited_cleanly=clean)


def remove(system, name: str, *, force: bool = False, volumes: bool = False) -> None:
    """DELETE /containers/{name}: Conflict when it runs and `force` is not given;
    `volumes` (?v=1, rm -v): its anonymous volumes go too."""
    from lamina import lifecycle
    from lamina.engine.journal import record

    rec = system.containers.resolve(name)
    lifecycle.remove(system, rec, force=force, volumes=volumes)
    record(system, "container", "destroy", rec.id, {"image": rec.image_ref, "name": rec.name})


def rename(system, name: str, new_name: str) -> None:
    """POST /containers/{name}/rename?name=NEW (docker rename)."""
    from lamina.engine.journal import record
    from lamina.errors import InvalidParameter

    rec = system.containers.resolve(name)
    new_name = new_name.lstrip("/")
    if not new_name:
        raise InvalidParameter("Neither old nor new names may be empty")
    if new_name == rec.name:
        raise InvalidParameter("Renaming a container with the same name as its current name")
    system.containers.rename(rec.id, new_name)
    record(system, "container", "rename", rec.id, {"image": rec.image_ref, "name": new_name,
                                                   "oldName": "/" + rec.name})


def diff(system, name: str) -> list:
    """GET /containers/{name}/changes: the changes (kind "A"/"C"/"D", path) in its writable layer."""
    from lamina.digest import Digest

    rec = system.containers.resolve(name)
    layers = system.unpack(Digest(rec.image_id))
    return system.snapshotter_for(rec).changes(system.containers.path(rec.id), layers)


def commit(system, name: str, *, repository: str | None = None, author: str = "", message: str = "",
           changes=()):
    """POST /commit: the container's changes as a new image (tagged `repository` if given); its ID."""
    from lamina.builder.configchanges import change_editor
    from lamina.engine.images import tag_references
    from lamina.imageops import commit_container

    tags = tag_references(repository)  # checked before the container is looked up, as docker
    rec = system.containers.resolve(name)
    image_id = commit_container(system, rec, author=author, message=message, edit_config=change_editor(changes),
                                tags=tags)
    from lamina.engine.journal import record

    record(system, "container", "commit", rec.id, {"comment": message, "imageID": str(image_id),
                                                   "image": rec.image_ref, "name": rec.name})
    return image_id


def export(system, rec, out) -> None:
    """GET /containers/{id}/export: its filesystem as a tar written to the binary stream `out`."""
    from lamina.archive.layertar import write_tree
    from lamina.engine.archive import mounted_rootfs
    from lamina.runtime.idnames import id_names

    if isinstance(rec, str):
        rec = system.containers.resolve(rec)
    with mounted_rootfs(system, rec) as rootfs:  # a running container's mount stays
        # owner names from the container's own files: docker's export runs chrooted
        write_tree(rootfs, out, owner_names=id_names(rootfs))


def status_text(system, rec) -> str:
    """The daemon's Status of a container (State.String()): `Up 5 minutes (healthy)`,
    `Exited (0) 2 seconds ago`, `Created`, … as `ps` and GET /containers/json show it."""
    import time

    from lamina.units import human_duration

    def ago(epoch: float) -> str:
        return human_duration(max(0.0, time.time() - epoch)) + " ago"

    if rec.state == "restarting":
        return f"Restarting ({rec.exit_code or 0}) " + ago(rec.finished or rec.created)
    if rec.state == "running":
        up = "Up " + human_duration(time.time() - (rec.started or rec.created))
        from lamina.engine.exec import is_paused  # Paused before health, as docker's

        if is_paused(system, rec):
            return f"{up} (Paused)"
        if rec.config.get("Healthcheck"):
            from lamina.engine.services import health_word

            word = health_word(system, rec)
            return f"{up} ({word})" if word else up
        return up
    if rec.state == "exited":
        return f"Exited ({rec.exit_code}) " + ago(rec.finished or rec.created)
    return "Created"


def size_of(system, rec) -> tuple[int, int]:
    """(SizeRw, SizeRootFs): the files in the container's upper dir, and those plus the image's."""
    import os

    from lamina.digest import Digest
    from lamina.errors import NotFound
    from lamina.snapshot.overlay import _tree_size  # what a layer's files weigh, as commit counts them

    upper = os.path.join(system.containers.path(rec.id), "upper")  # the copy snapshotter has none: 0
    rw = _tree_size(upper) if os.path.isdir(upper) else 0
    try:
        image = system.images.get(Digest(rec.image_id)).size
    except NotFound:  # the image is gone (rmi -f): only the container's own files
        image = 0
    return rw, rw + image

