"""Container lifecycle without a daemon: create, start (and wait), remove.

`create` records the container (docker-shaped Config and HostConfig) and its
empty writable layer; `start` mounts it, writes the OCI bundle and runs the
runtime in the foreground, recording the exit code; `remove` unmounts and
deletes.  The build executor runs its RUN steps through the same functions.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from lamina import oci
from lamina.digest import Digest
from lamina.errors import Conflict, RuntimeFailure, UsageError
from lamina.network import MODES as NETWORK_MODES, attach, mode, release
from lamina.runtime.spec import BindMount

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class RunOptions:
    """What `docker run` flags can change about a container."""

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
    labels: dict = field(default_factory=dict)
    security_opt: tuple[str, ...] = ()          # as HostConfig.SecurityOpt records them (seccomp=...)


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
    env = list(img.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    env = oci.merge_env(env, opts.env)
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
        "Env": env,
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
        raise UsageError("No command specified")
    if opts.network not in NETWORK_MODES:
        raise RuntimeFailure(f"network {opts.network} not found")  # docker run: 125
    host_config = {
        "Binds": [f"{b.source}:{b.destination}{':ro' if b.readonly else ''}" for b in opts.binds] or None,
        "NetworkMode": opts.network,  # "default" like docker when not given
        "AutoRemove": opts.auto_remove,
        "Runtime": system.runtime.name,
        "LogConfig": {"Type": "none", "Config": {}},
        "SecurityOpt": list(opts.security_opt) or None,
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
    from lamina.runtime.rootfs import lookup_user
    from lamina.runtime.console import terminal_size
    from lamina.runtime.seccomp import seccomp_option
    from lamina.runtime.spec import RunSpec, check_command, write_bundle
    from lamina.runtime.watchdog import Watchdog

    if rec.running:
        raise Conflict(f"container {rec.short_id} is already running")
    cfg = rec.config
    tty = cfg.get("Tty", False) if tty is None else tty
    interactive = cfg.get("OpenStdin", False) if interactive is None else interactive
    ctr_dir = system.containers.path(rec.id)
    snap = system.snapshotter_for(rec)
    layers = system.unpack(Digest(rec.image_id))
    rootfs = snap.mount(ctr_dir, layers)
    # From here on a front killed with -9 leaves nothing running or mounted: see watchdog.py.
    watchdog = Watchdog(system, rec.id, remove=bool(rec.host_config.get("AutoRemove")))
    endpoint = None
    try:
        cwd = cfg.get("WorkingDir") or "/"
        ensure_workdir(rootfs, cwd)
        network = mode(rec.host_config.get("NetworkMode", "host"))
        if network == "bridge":  # before the runtime starts: config.json names its namespace
            endpoint = attach(system, rec.id)
            network = endpoint.netns
        hosts, hostname_file, resolv = write_etc_files(ctr_dir, cfg.get("Hostname", ""), network, endpoint)
        spec = RunSpec(
            args=tuple(cfg.get("Entrypoint") or []) + tuple(cfg.get("Cmd") or []),
            rootfs=rootfs, env=tuple(cfg.get("Env") or []), cwd=cwd,
            user=lookup_user(rootfs, cfg.get("User") or ""), terminal=tty,
            console_size=terminal_size() if tty else None, hostname=cfg.get("Hostname", ""),
            network=network,
            mounts=tuple(map(_parse_bind, rec.host_config.get("Binds") or [])),
            hosts_file=hosts, hostname_file=hostname_file, resolv_conf_file=resolv,
            cgroups_path=f"/lamina/{rec.id}",
            seccomp=seccomp_option(rec.host_config.get("SecurityOpt")),
        )
        check_command(spec)
        bundle = write_bundle(os.path.join(ctr_dir, "bundle"), spec)
        system.containers.set_running(rec.id, watchdog.pid)  # its keeper: Up while it lives
        try:
            code = system.runtime.run(rec.id, os.path.dirname(bundle), tty=tty, interactive=interactive)
        except BaseException:
            system.containers.set_exited(rec.id, 137)
            raise
        system.containers.set_exited(rec.id, code)
        return code
    finally:
        try:
            if endpoint is not None:
                release(system, rec.id)
            snap.unmount(ctr_dir)
        finally:
            watchdog.done()


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


def ensure_workdir(rootfs: str, cwd: str) -> None:
    """docker creates a missing WorkingDir (in the container's own layer), also
    behind a link to a missing directory; made on fds from the root, never by a
    host path string (the image's links must not lead out of it)."""
    from lamina.archive.inroot import InRoot, make_dirs

    if "\0" in cwd:  # an image config can carry one: it would be a ValueError in the walk
        from lamina.quoting import go_quote

        raise RuntimeFailure(f"the working directory {go_quote(cwd)} is invalid: it contains a NUL byte")
    tree = InRoot(rootfs)
    try:
        make_dirs(tree, cwd)
    except OSError as e:  # docker: 125, "... not a directory"
        raise RuntimeFailure(f"working directory {cwd}: {e.strerror.lower()}") from None
    finally:
        tree.close()


def write_etc_files(ctr_dir: str, hostname: str, network: str, endpoint=None) -> tuple[str, str, str]:
    """Per-container /etc/hosts, /etc/hostname and /etc/resolv.conf (bind-mounted,
    so they never land in the writable layer or in `diff`), as docker writes them:
    the host's files for `host`; otherwise docker's hosts (with the container's
    address for its hostname on the bridge) and the host's resolv.conf without
    the nameservers a private namespace cannot reach."""
    from lamina.network.resolvconf import for_namespace

    hosts = os.path.join(ctr_dir, "hosts")
    resolv = os.path.join(ctr_dir, "resolv.conf")
    if network == "host":
        for src, dst in (("/etc/hosts", hosts), ("/etc/resolv.conf", resolv)):
            try:
                shutil.copyfile(src, dst)
            except OSError:
                open(dst, "w").close()
    else:
        with open(hosts, "w") as f:
            f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                    "ff02::2\tip6-allrouters\n")
            if hostname and endpoint is not None:
                f.write(f"{endpoint.address}\t{hostname}\n")
        with open(resolv, "w") as f:
            f.write(for_namespace())
    hostname_file = os.path.join(ctr_dir, "hostname")
    with open(hostname_file, "w") as f:
        f.write(hostname + "\n")
    return hosts, hostname_file, resolv


def parse_volume(spec: str) -> BindMount:
    """`-v /host:/ctr[:ro|rw]` (bind mounts only; named volumes are not supported yet)."""
    parts = spec.split(":")
    if len(parts) == 1:
        raise UsageError(f"invalid volume specification {spec!r}: anonymous volumes are not supported yet")
    if len(parts) > 3:
        raise UsageError(f"invalid volume specification: {spec!r}")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z", "rw,Z"):
        raise UsageError(f"invalid mode: {mode}")
    if not source.startswith("/"):
        raise UsageError(f"invalid volume specification {spec!r}: named volumes are not supported yet, "
                         "use an absolute host path")
    if not target.startswith("/"):
        raise UsageError(f"invalid volume specification: {spec!r}: invalid mount config: "
                         "mount path must be absolute")
    if not os.path.exists(source):
        os.makedirs(source, 0o755)  # docker creates a missing bind source
    return BindMount(os.path.abspath(source), os.path.normpath(target), mode.startswith("ro"))


def _parse_bind(text: str) -> BindMount:
    src, _, rest = text.partition(":")
    target, _, mode = rest.partition(":")
    return BindMount(src, target, mode == "ro")
