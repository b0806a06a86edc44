"""Container operations: list, inspect, create, start/run, remove, diff, commit, export.

They take a `System` and plain arguments (run options as lifecycle.RunOptions)
and return the store's ContainerRecord, docker-shaped documents, changes or
exit codes.  `ps` is a hot path: nothing is imported at module level, and
listing needs nothing beyond the store.
"""

from __future__ import annotations


def rfc3339(epoch: float | None) -> str:
    """Go's RFC 3339 with nanoseconds, as the Engine API writes times (zero time for none)."""
    if not epoch:
        return "0001-01-01T00:00:00Z"
    # datetime.fromtimestamp's split, without importing datetime (inspect's start-up time):
    # whole seconds toward zero, microseconds rounded half-even, carried into the seconds
    import time

    whole = int(epoch)
    us = round((epoch - whole) * 1e6)
    if us >= 1000000:
        us, whole = us - 1000000, whole + 1
    elif us < 0:
        us, whole = us + 1000000, whole - 1
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole)) + f"{us:06d}000Z"


def list_containers(system, *, all: bool = False, latest: bool = False) -> list:
    """Container records, newest first: running ones, or every one with `all`; only the
    newest with `latest` (docker ps -l)."""
    recs = [r for r in system.containers.list() if all or latest or r.running]
    return recs[:1] if latest else recs


def listed_image(system, rec) -> str:
    """ps's IMAGE as docker's daemon picks it: the name the container was made from
    while that name still gives the container's image (not after `rmi -f` or a
    re-tag), else the image ID."""
    from lamina.errors import LaminaError

    if rec.image_ref != rec.image_id:
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
    from lamina.network import settings as network_settings

    if isinstance(rec, str):
        rec = system.containers.resolve(rec)
    cfg = rec.config
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    ctr_dir = system.containers.path(rec.id)
    state = rec.state
    return {
        "Id": rec.id,
        "Created": rfc3339(rec.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": state, "Running": state == "running", "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": rec.pid or 0, "ExitCode": rec.exit_code or 0, "Error": "",
            "StartedAt": rfc3339(rec.started), "FinishedAt": rfc3339(rec.finished),
        },
        "Image": rec.image_id,
        "ResolvConfPath": f"{ctr_dir}/resolv.conf",
        "HostnamePath": f"{ctr_dir}/hostname",
        "HostsPath": f"{ctr_dir}/hosts",
        "LogPath": "",
        "Name": "/" + rec.name,
        "RestartCount": 0,
        "Driver": rec.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": rec.host_config,
        "GraphDriver": {"Data": {"UpperDir": f"{ctr_dir}/upper", "WorkDir": f"{ctr_dir}/work",
                                 "MergedDir": f"{ctr_dir}/rootfs"} if rec.driver == "overlay" else None,
                        "Name": rec.driver},
        "Mounts": [
            {"Type": "bind", "Source": b.split(":")[0], "Destination": b.split(":")[1], "Mode": "",
             "RW": not b.endswith(":ro"), "Propagation": "rprivate"}
            for b in rec.host_config.get("Binds") or []
        ],
        "Config": cfg,
        "NetworkSettings": network_settings(system, rec),
    }


def image_for_run(system, name: str, *, pull: str = "missing", progress=None, notice=None):
    """The image record to run, pulled first when missing (unless `pull` is "never");
    an invalid reference is an error, never a pull."""
    from lamina.errors import NoSuchImage
    from lamina.reference import parse

    try:
        return system.images.resolve(name)
    except NoSuchImage:
        if pull == "never":
            raise
        parse(name)
    from lamina.engine.images import ensure_image

    if progress is None:
        from lamina.transfer.progress import QuietProgress

        progress = QuietProgress()
    return ensure_image(system, name, progress=progress, notice=notice)


def create(system, image, image_ref: str, options):
    """A new container of `image` (a record) with `options` (lifecycle.RunOptions); its record."""
    from lamina import lifecycle

    return lifecycle.create(system, image.id, image_ref, options)


def start(system, rec, *, interactive: bool | None = None) -> int:
    """Run a created (or exited) container in the foreground; its exit code.  A container
    created with auto-remove is removed afterwards, as `docker start` of one does."""
    from lamina import lifecycle

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


def remove(system, name: str, *, force: bool = False) -> None:
    """DELETE /containers/{name}: Conflict when it runs and `force` is not given."""
    from lamina import lifecycle

    lifecycle.remove(system, system.containers.resolve(name), force=force)


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
    return commit_container(system, rec, author=author, message=message, edit_config=change_editor(changes),
                            tags=tags)


def export(system, rec, out) -> None:
    """GET /containers/{id}/export: its filesystem as a tar written to the binary stream `out`."""
    from lamina.archive.layertar import write_tree
    from lamina.digest import Digest
    from lamina.runtime.rootfs import id_names

    if isinstance(rec, str):
        rec = system.containers.resolve(rec)
    snap = system.snapshotter_for(rec)
    ctr_dir = system.containers.path(rec.id)
    rootfs = snap.mount(ctr_dir, system.unpack(Digest(rec.image_id)))
    try:
        # owner names from the container's own files: docker's export runs chrooted
        write_tree(rootfs, out, owner_names=id_names(rootfs))
    finally:
        snap.unmount(ctr_dir)
