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
from lamina.runtime.specmounts import BindMount


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
    aliases: tuple[str, ...] = ()               # --network-alias (on a user network)
    config: dict = None                         # type: ignore[assignment] - more Config keys (MacAddress, ...)
    host: dict = None                           # type: ignore[assignment] - more HostConfig keys, docker-shaped
                                                # (PortBindings, Memory, CapAdd, ...): recorded as given
    exposed_ports: tuple[str, ...] = ()         # --expose and -p's container ports ("80/tcp"): Config.ExposedPorts
    healthcheck: dict | None = None             # --health-* / --no-healthcheck: Config.Healthcheck over the image's

    def __post_init__(self) -> None:
        for name in ("labels", "host", "config"):  # a fresh dict each, as dataclasses' default_factory gave
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
    if opts.healthcheck is not None:  # run's --health-* fields over the image's (lamina/health.py)
        from lamina.health import merge

        cfg["Healthcheck"] = merge(img.get("Healthcheck"), opts.healthcheck)
    if opts.exposed_ports:  # docker's union: the image's, --expose's and -p's
        cfg["ExposedPorts"] = {**(cfg.get("ExposedPorts") or {}), **{key: {} for key in opts.exposed_ports}}
    cfg.update(opts.config)
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
        "Binds": [f"{b.source}:{b.destination}{':ro' if b.readonly else ''}" if isinstance(b, BindMount)
                  else b.bind_text for b in opts.binds if isinstance(b, BindMount) or b.bind_text] or None,
        "NetworkMode": opts.network,  # "default" like docker when not given
        "AutoRemove": opts.auto_remove,
        "Runtime": system.runtime.name,
        "LogConfig": {"Type": "json-file", "Config": {}},  # docker's default: `logs` after any run
        "SecurityOpt": list(opts.security_opt) or None,
        "ExtraHosts": None, "Dns": [], "DnsSearch": [], "DnsOptions": [],  # docker's when not given
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
    volumes = [b for b in opts.binds if not isinstance(b, BindMount)]  # volumemounts.VolumeSpec: -v NAME:/p, -v /p
    if any(not v.name and not v.mode for v in volumes):  # -v /p: Config.Volumes, as docker's (not --mount's)
        cfg["Volumes"] = {**(cfg.get("Volumes") or {}),
                          **{v.destination: {} for v in volumes if not v.name and not v.mode}}
    system.containers.set_config(rec.id, cfg)
    if host_config["NetworkMode"] not in NETWORK_MODES and ":" not in host_config["NetworkMode"]:
        from lamina.network import join_at_create  # a user network: its membership (and aliases)

        join_at_create(system, rec.id, host_config["NetworkMode"], opts.aliases)
    try:
        if volumes or cfg.get("Volumes") or host_config.get("VolumesFrom") or host_config.get("Mounts"):
            from lamina.volumemounts import attach

            attach(system, rec.id, volumes, cfg.get("Volumes"),
                   taken=[b.destination for b in opts.binds if isinstance(b, BindMount)])
        snap.prepare(system.containers.path(rec.id), layers)
        if (host_config.get("LogConfig") or {}).get("Type") == "json-file":
            _make_log(system.containers.path(rec.id), rec.id)
    except BaseException:
        remove(system, system.containers.get(rec.id), force=True, volumes=True)
        raise
    return system.containers.get(rec.id)


def _make_log(container_dir: str, container_id: str) -> None:
    """The container's json-file log, empty, from its creation on: an attach made before
    the start (`docker run`, `start -a`) then holds the file its run appends to (the
    writer never truncates it), and reads all of it however soon the run ends and is
    removed (--rm unlinks the file, an open one stays readable).  Made only at the
    first start, it could be written and unlinked between two of the follower's looks."""
    from lamina.logs.options import log_path

    os.close(os.open(log_path(container_dir, container_id), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640))


def start(system, rec, *, tty: bool | None = None, interactive: bool | None = None, detached=None) -> int:
    """Run a created or stopped container in the foreground (or, with `detached`, in
    its monitor: lamina/monitor.py); returns its exit code."""
    if rec.running and detached is None:  # a monitor's restart finds its own record restarting
        raise Conflict(f"container {rec.short_id} is already running")
    _make_bind_sources(rec)
    try:
        return _start(system, rec, tty, interactive, detached)
    except LaminaError as e:
        from lamina.store import runstate

        # as dockerd: a start that failed leaves its error and code on the container (the
        # command's 126/127, else 128 where it had none) unless a run already recorded one
        now = system.containers.get(rec.id)
        code = getattr(e, "state_exit_code", e.exit_code)
        if code in (126, 127) or (rec.state != "restarting" and not now.exit_code):
            system.containers.set_exit_code(rec.id, code if code in (126, 127) else 128)
        runstate.update(system.db, rec.id, error=str(e))
        raise


def _make_bind_sources(rec) -> None:
    """A `-v` bind source that is gone made again (0755), as dockerd's every start does."""
    for bind in rec.host_config.get("Binds") or ():
        if bind.startswith("/"):
            source = _parse_bind(bind).source
            if not os.path.exists(source):
                os.makedirs(source, 0o755, exist_ok=True)


def check_mount_sources(rec) -> None:
    """A user's `start` (not a restart, nor a policy's) refuses a `--mount` bind whose
    source is gone before it touches the container (dockerd's ContainerStart runs
    verifyContainerSettings first): State stays as it was, no code, no error."""
    for m in rec.host_config.get("Mounts") or ():
        if m.get("Type") == "bind" and not os.path.exists(m.get("Source") or ""):
            raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not exist: '
                                   f'{m.get("Source")}')


def _start(system, rec, tty, interactive, detached=None) -> int:
    from lamina.runner import Launch, run_container
    from lamina.runtime.seccomp import seccomp_option

    network = rec.host_config.get("NetworkMode", "host")
    if network not in NETWORK_MODES:  # docker creates such a container; starting it fails (run: 125)
        from lamina.network import check_mode

        try:
            check_mode(system, network)
        except LaminaError as e:
            raise RuntimeFailure(str(e)) from None
    cfg = rec.config
    args = tuple(cfg.get("Entrypoint") or []) + tuple(cfg.get("Cmd") or [])
    binds = tuple(_parse_bind(b) for b in rec.host_config.get("Binds") or [] if b.startswith("/"))
    prepare, tmpfs = None, ()
    if has_volumes(rec):  # volumes (bound as binds, filled from the image once) and --mount's
        from lamina.volumemounts import for_start

        more, tmpfs, prepare = for_start(system, rec)
        binds += more
    if rec.host_config.get("Init"):  # run --init: tini as PID 1
        from lamina.runtime.dockerinit import with_init

        args, binds = with_init(args, binds)
    launch = Launch(
        args=args,
        env=tuple(cfg.get("Env") or []), cwd=cfg.get("WorkingDir") or "/", user=cfg.get("User") or "",
        hostname=cfg.get("Hostname", ""), network=network,
        binds=binds, tmpfs=tmpfs,
        seccomp=seccomp_option(rec.host_config.get("SecurityOpt")),
        tty=cfg.get("Tty", False) if tty is None else tty,
        interactive=cfg.get("OpenStdin", False) if interactive is None else interactive,
        auto_remove=bool(rec.host_config.get("AutoRemove")),
        host_config=rec.host_config,
        emulate=oci.foreign_arch(system.images.config(Digest(rec.image_id))),  # run --platform: under qemu
    )
    layers = system.unpack(Digest(rec.image_id))
    stop_health = None
    if detached is None and rec.config.get("Healthcheck"):  # a foreground front probes too, as dockerd would
        from lamina.health import start_thread

        stop_health = start_thread(system, rec)
    try:
        return run_container(system, rec, system.snapshotter_for(rec), layers, launch, detached=detached,
                             prepare=prepare)
    finally:
        if stop_health is not None:
            stop_health()


def remove(system, rec, *, force: bool = False, exited_cleanly: bool = False, volumes: bool = False) -> None:
    """Delete a container.  `exited_cleanly`: the caller just saw the runtime
    finish it (run --rm), so there is no runtime state to clean up.  `volumes`
    (rm -v; always for --rm, as dockerd): its anonymous volumes go too."""
    if rec.running and not force:
        raise Conflict(f"You cannot remove a {rec.state} container {rec.id}. "  # running|restarting
                       "Stop the container before attempting removal or force remove")
    if not exited_cleanly:
        # `rm -f` of a running one, or what a killed front left: the one cleanup that
        # the watchdog and recovery use too (processes, runtime state, mount, network).
        from lamina.recovery import reap

        if rec.running:  # a monitor's container: killed, and its monitor let finish first
            from lamina.services import halt

            halt(system, rec)
        reap(system, rec)
    ctr_dir = system.containers.path(rec.id)
    release(system, rec.id)
    if has_volumes(rec):
        from lamina.volumemounts import release as release_volumes

        release_volumes(system, rec.id, remove_anonymous=volumes or bool(rec.host_config.get("AutoRemove")))
    system.containers.delete(rec.id)
    system.snapshotter_for(rec).remove(ctr_dir)
    remove_dir(ctr_dir)


def remove_dir(ctr_dir: str) -> None:
    """Delete a container's directory on fds, no-follow (its upper layer is the
    container's own content), however deep the tree."""
    from lamina.archive.rmtree import remove_path
    from lamina.errors import StoreError

    try:
        remove_path(ctr_dir)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StoreError(f"cannot remove container directory {ctr_dir}: {e.strerror}") from None


def has_volumes(rec) -> bool:
    """Whether a container has volume mounts or --mount/--volumes-from ones
    (lamina/volumemounts.py, imported only then)."""
    hc = rec.host_config
    return bool(rec.config.get("Volumes") or hc.get("VolumesFrom") or hc.get("Mounts")
                or any(not b.startswith("/") for b in hc.get("Binds") or ()))


def parse_volume(spec: str):
    """`-v /host:/ctr[:ro|rw]`: a BindMount; `-v NAME:/ctr[:mode]` and `-v /ctr`: a
    volume (lamina/volumemounts.py's VolumeSpec)."""
    parts = spec.split(":")
    if len(parts) == 1 or not parts[0].startswith("/"):
        from lamina.volumemounts import parse

        return parse(spec)
    if len(parts) > 3:
        raise InvalidParameter(f"invalid volume specification: {spec!r}")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if "nocopy" in mode.split(","):
        raise InvalidParameter(f"invalid volume specification: {spec!r}: invalid mount config for type \"bind\": "
                               "field VolumeOptions must not be specified")
    if mode not in ("ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z", "rw,Z"):
        raise InvalidParameter(f"invalid mode: {mode}")
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
