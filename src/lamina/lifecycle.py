"""Container lifecycle without a daemon: create, start (and wait), remove.

`create` records the container (docker-shaped Config and HostConfig) and its
empty writable layer; `start` runs it in the foreground through the one
container runner (lamina/runner.py, which the builder's RUN steps use too),
recording the exit code; `remove` unmounts and deletes.
"""

from __future__ import annotations

import os

from lamina import oci
from lamina.digest import Digest
from lamina.errors import Conflict, InvalidParameter, LaminaError, RuntimeFailure
from lamina.network import MODES as NETWORK_MODES, release
from lamina.record import record
from lamina.runtime.spec import BindMount


@record
class RunOptions:
    """What `docker run` flags can change about a container (a @record: `run` must
    not import dataclasses)."""

    cmd: tuple[str, ...] | None = None          # None: the image's Cmd
    entrypoint: tuple[str, ...] | None = None   # None: the image's; () clears it
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str = "default"                   # default|bridge (the bridge), host, none
    binds: tuple[BindMount, ...] = ()
    tty: bool = False
    interactive: bool = False
    name: str | None = None
    auto_remove: bool = False
    labels: dict = None                         # type: ignore[assignment] - {} when not given
    security_opt: tuple[str, ...] = ()          # as HostConfig.SecurityOpt records them (seccomp=...)
    host: dict = None                           # type: ignore[assignment] - more HostConfig keys, docker-shaped
                                                # (PortBindings, Memory, CapAdd, ...): recorded as given

    def __post_init__(self) -> None:
        for name in ("labels", "host"):  # a fresh dict each, as dataclasses' default_factory gave
            if getattr(self, name) is None:
                self.__dict__[name] = {}


def container_config(image_config: dict, opts: RunOptions, image_ref: str, hostname: str) -> dict:
    """The container's Config as docker records it: the image's, with run's overrides."""
    img = image_config.get("config") or {}
    cfg = oci.empty_container_config()
    entrypoint = list(img.get("Entrypoint") or []) or None
    cmd = list(img.get("Cmd") or []) or None
    if opts.entrypoint is not None:
        entrypoint = list(opts.entrypoint) or None
        cmd = None  # docker: --entrypoint resets the image's CMD
    if opts.cmd:
        cmd = list(opts.cmd)
    # no PATH added here: docker records the image's Env as is (the runtime spec gives
    # the process its default PATH), so a commit does not bake one into the image
    env = oci.merge_env(list(img.get("Env") or []), opts.env)
    labels = dict(img.get("Labels") or {})
    labels.update(opts.labels)
    cfg.update({
        "Hostname": hostname,
        "User": opts.user if opts.user is not None else img.get("User", ""),
        "AttachStdin": opts.interactive,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": opts.interactive,
        "Env": env or None,  # null when empty, as docker's
        "Cmd": cmd,
        "Image": image_ref,
        "Volumes": img.get("Volumes"),
        "WorkingDir": opts.workdir if opts.workdir is not None else img.get("WorkingDir", ""),
        "Entrypoint": entrypoint,
        "OnBuild": img.get("OnBuild"),
        "Labels": labels or {},
    })
    for key in ("ExposedPorts", "StopSignal", "Healthcheck", "Shell"):
        if img.get(key):
            cfg[key] = img[key]
    return cfg


def create(system, image_id: Digest, image_ref: str, opts: RunOptions):
    """Record a container and prepare its writable layer; returns the record."""
    image_config = system.images.config(image_id)
    args = (image_config.get("config") or {})
    if not (opts.cmd or (opts.entrypoint if opts.entrypoint is not None else args.get("Entrypoint"))
            or (args.get("Cmd") if opts.entrypoint is None else None)):
        raise InvalidParameter("No command specified")
    if opts.workdir and not opts.workdir.startswith("/"):  # dockerd checks it at create (run: 125, help line)
        raise InvalidParameter(f"the working directory '{opts.workdir}' is invalid, it needs to be an absolute path")
    host_config = {
        "Binds": [f"{b.source}:{b.destination}{':ro' if b.readonly else ''}" for b in opts.binds] or None,
        "NetworkMode": opts.network,  # "default" like docker when not given
        "AutoRemove": opts.auto_remove,
        "Runtime": system.runtime.name,
        "LogConfig": {"Type": "none", "Config": {}},
        "SecurityOpt": list(opts.security_opt) or None,
        **opts.host,
    }
    layers = system.unpack(image_id)
    snap = system.snapshotter
    rec = system.containers.create(
        name=opts.name, image_id=str(image_id), image_ref=image_ref,
        config={}, host_config=host_config, driver=snap.name,
    )
    hostname = opts.hostname or (os.uname().nodename if host_config["NetworkMode"] == "host" else rec.id[:12])
    cfg = container_config(image_config, opts, image_ref, hostname)
    system.containers.set_config(rec.id, cfg)
    try:
        snap.prepare(system.containers.path(rec.id), layers)
    except BaseException:
        remove(system, system.containers.get(rec.id), force=True)
        raise
    return system.containers.get(rec.id)


def start(system, rec, *, tty: bool | None = None, interactive: bool | None = None) -> int:
    """Run a created or stopped container in the foreground; returns its exit code."""
    if rec.running:
        raise Conflict(f"container {rec.short_id} is already running")
    try:
        return _start(system, rec, tty, interactive)
    except LaminaError as e:
        # as dockerd: a start that failed leaves its code on the container (the command's
        # 126/127, else 128) unless the runtime already ran it and recorded one
        if system.containers.get(rec.id).state != "exited" or e.exit_code in (126, 127):
            system.containers.set_exit_code(rec.id, e.exit_code if e.exit_code in (126, 127) else 128)
        raise


def _start(system, rec, tty, interactive) -> int:
    from lamina.runner import Launch, run_container
    from lamina.runtime.seccomp import seccomp_option

    network = rec.host_config.get("NetworkMode", "host")
    if network not in NETWORK_MODES:  # docker creates such a container; starting it fails (run: 125)
        raise RuntimeFailure(f"network {network} not found")
    cfg = rec.config
    launch = Launch(
        args=tuple(cfg.get("Entrypoint") or []) + tuple(cfg.get("Cmd") or []),
        env=tuple(cfg.get("Env") or []), cwd=cfg.get("WorkingDir") or "/", user=cfg.get("User") or "",
        hostname=cfg.get("Hostname", ""), network=network,
        binds=tuple(map(_parse_bind, rec.host_config.get("Binds") or [])),
        seccomp=seccomp_option(rec.host_config.get("SecurityOpt")),
        tty=cfg.get("Tty", False) if tty is None else tty,
        interactive=cfg.get("OpenStdin", False) if interactive is None else interactive,
        auto_remove=bool(rec.host_config.get("AutoRemove")),
        host_config=rec.host_config,
    )
    layers = system.unpack(Digest(rec.image_id))
    return run_container(system, rec, system.snapshotter_for(rec), layers, launch)


def remove(system, rec, *, force: bool = False, exited_cleanly: bool = False) -> None:
    """Delete a container.  `exited_cleanly`: the caller just saw the runtime
    finish it (run --rm), so there is no runtime state to clean up."""
    if rec.running and not force:
        raise Conflict(f"You cannot remove a running container {rec.id}. "
                       "Stop the container before attempting removal or force remove")
    if not exited_cleanly:
        # `rm -f` of a running one, or what a killed front left: the one cleanup that
        # the watchdog and recovery use too (processes, runtime state, mount, network).
        from lamina.recovery import reap

        reap(system, rec)
    ctr_dir = system.containers.path(rec.id)
    release(system, rec.id)
    system.containers.delete(rec.id)
    system.snapshotter_for(rec).remove(ctr_dir)
    remove_dir(ctr_dir)


def remove_dir(ctr_dir: str) -> None:
    """Delete a container's directory on fds, no-follow (its upper layer is the
    container's own content), however deep the tree."""
    from lamina.archive.inroot import remove_path
    from lamina.errors import StoreError

    try:
        remove_path(ctr_dir)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StoreError(f"cannot remove container directory {ctr_dir}: {e.strerror}") from None


def parse_volume(spec: str) -> BindMount:
    """`-v /host:/ctr[:ro|rw]` (bind mounts only; named volumes are not supported yet)."""
    parts = spec.split(":")
    if len(parts) == 1:
        raise InvalidParameter(f"invalid volume specification {spec!r}: anonymous volumes are not supported yet")
    if len(parts) > 3:
        raise InvalidParameter(f"invalid volume specification: {spec!r}")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z", "rw,Z"):
        raise InvalidParameter(f"invalid mode: {mode}")
    if not source.startswith("/"):
        raise InvalidParameter(f"invalid volume specification {spec!r}: named volumes are not supported yet, "
                               "use an absolute host path")
    if not target.startswith("/"):
        raise InvalidParameter(f"invalid volume specification: {spec!r}: invalid mount config for type \"bind\": "
                               f"invalid mount path: {target!r} mount path must be absolute")
    if not os.path.exists(source):
        os.makedirs(source, 0o755)  # docker creates a missing bind source
    return BindMount(os.path.abspath(source), os.path.normpath(target), mode.startswith("ro"))


def _parse_bind(text: str) -> BindMount:
    src, _, rest = text.partition(":")
    target, _, mode = rest.partition(":")
    return BindMount(src, target, mode == "ro")
