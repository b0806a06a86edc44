"""The one container runner: `run`/`start` and the builder's RUN steps both end here.

Given a created container (its record and writable layer), `run_container`
mounts its root filesystem, starts the watchdog that reaps it should the front
be killed (runtime/watchdog.py), makes the working directory, attaches it to
the network (lamina.network), writes /etc/hosts, /etc/hostname, /etc/resolv.conf
and the OCI bundle (seccomp included: runtime/spec.py), runs it in the
foreground through the runtime and records its exit code; then releases the
network, unmounts and lets the watchdog go, whatever happened.  What differs
between `run` and a build step is data (`Launch`) plus one hook for the step's
mount points, so a fix to this sequence reaches both.
"""

from __future__ import annotations

import os
import sys

from lamina import rootless
from lamina.errors import LaminaError, RuntimeFailure
from lamina.network import attach, mode, release
from lamina.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time that `run` does not have
    from typing import Callable, ContextManager, Sequence

    from lamina.runtime.specmounts import BindMount, TmpfsMount

    Prepare = Callable[[str], Callable[[], None] | None]


@record
class Launch:
    """What one start of a container runs, and how."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""                   # as the image or -u gives it: resolved in the rootfs
    hostname: str = ""
    network: str = "none"            # a NetworkMode (default|bridge|host|none)
    binds: tuple[BindMount, ...] = ()
    tmpfs: tuple[TmpfsMount, ...] = ()
    seccomp: str = "default"
    tty: bool = False
    interactive: bool = False
    check_command: bool = True       # `run` fails fast (127/126) before runc; a build step lets runc say it
    auto_remove: bool = False        # the watchdog also removes the container (run --rm, build steps)
    host_config: dict = None         # type: ignore[assignment] - the container's HostConfig (limits,
                                     # capabilities, ports, ...); {} for a build step: the defaults
    emulate: str = ""                # a foreign image's GOARCH: run through qemu (runtime/binfmt.py)

    def __post_init__(self) -> None:
        if self.host_config is None:
            self.__dict__["host_config"] = {}


def _foreground_log(system, rec, launch: Launch):
    """The json-file writer of a foreground run (with -t too: the pty's output) whose
    LogConfig asks for one (lamina/logs: docker's default, so `logs` works after a plain
    `run`), or None (--log-driver none, a build step)."""
    if (launch.host_config.get("LogConfig") or {}).get("Type") != "json-file":
        return None
    from lamina.logs.options import open_writer

    return open_writer(launch.host_config, system.containers.path(rec.id), rec.id, record=rec)


def run_container(system, rec, snap, layers: Sequence, launch: Launch, *,
                  prepare: Prepare | None = None, output: ContextManager | None = None,
                  detached=None) -> int:
    """Run container `rec` (created, not running) in the foreground; returns its exit code.

    `snap` is the snapshotter that made its layer, `layers` its image's layers.
    `prepare(rootfs)` runs once the working directory exists, before the bundle
    is written; the callable it returns (or None) runs after a run that finished,
    still mounted (a build step removes its mount-point stubs there).  `output`,
    when given, is entered around the runtime only (a build's stream).  `detached`
    (lamina/monitor.py's, in a monitor process): run it detached instead, its output
    into `detached.sink`, `detached.started(init_pid)` once it runs."""
    from lamina.runtime.rootfs import lookup_user
    from lamina.runtime.spec import RunSpec, check_command, write_bundle
    from lamina.runtime.watchdog import Watchdog

    ctr_dir = system.containers.path(rec.id)
    rootfs = snap.mount(ctr_dir, layers)
    # From here on a front killed with -9 leaves nothing running or mounted: see watchdog.py.
    # What it execs then is lamina/reaper.py, by name: it imports lifecycle, which imports us.
    reap = [sys.executable, "-m", "lamina.reaper", system.root, system.runtime.path, rec.id]
    watchdog = Watchdog(reap + ["--rm"] if launch.auto_remove else reap, lean=detached is not None)
    endpoint = None
    finish = None
    try:
        cwd = launch.cwd or "/"
        ensure_workdir(rootfs, cwd)
        if prepare is not None:  # first: a build step's own mount-point stubs are its to remove
            finish = prepare(rootfs)
        if system.runtime.name != "runc":  # runc makes them itself
            tmpfs = (*(t.destination for t in launch.tmpfs), *(launch.host_config.get("Tmpfs") or ()))
            if launch.binds or tmpfs:
                ensure_mount_points(rootfs, launch.binds, tmpfs)
        user = lookup_user(rootfs, launch.user)
        network = mode(launch.network)
        if network not in ("host", "none"):  # before the runtime starts: config.json names its namespace
            # bridge, a user network or container:NAME (a monitor's first run: maybe attached by its CLI)
            endpoint = (getattr(detached, "attach", None) or attach)(system, rec.id, network, rec=rec)
            if (launch.host_config.get("PortBindings") or launch.host_config.get("PublishAllPorts")) \
                    and not network.startswith("container:") and not rootless():  # rootless: slirp4netns's
                from lamina.network.portmap import publish  # -p/-P: rules to the address just attached

                publish(system, rec, endpoint, launch.host_config)
            network = endpoint.netns
        hostname = getattr(endpoint, "hostname", "") or launch.hostname  # container:NAME: that one's, as docker's
        hosts, hostname_file, resolv = write_etc_files(ctr_dir, hostname, network, endpoint,
                                                       launch.host_config, rec.config.get("Domainname", ""))
        console_size = None
        if launch.tty:
            from lamina.runtime.console import terminal_size

            console_size = terminal_size()
        spec = RunSpec(
            args=launch.args, rootfs=rootfs, env=launch.env, cwd=cwd, user=user, terminal=launch.tty,
            console_size=console_size, hostname=hostname, network=network, mounts=launch.binds,
            hosts_file=hosts, hostname_file=hostname_file, resolv_conf_file=resolv,
            cgroups_path=None if rootless() else f"/lamina/{rec.id}", seccomp=launch.seccomp, tmpfs=launch.tmpfs,
            # the limit keys are recorded together, and only when a limit flag was given
            resources=launch.host_config if "NanoCpus" in launch.host_config else None,
            host=launch.host_config or None, readonly_rootfs=bool(launch.host_config.get("ReadonlyRootfs")),
        )
        if launch.check_command:
            check_command(spec)
        if launch.emulate:  # registered before the runtime execs the foreign binary
            from lamina.runtime.binfmt import ensure

            ensure(launch.emulate)
        from lamina.runtime.seccompcache import for_runtime

        seccomp_filter = for_runtime(system.runtime)  # crun: its compiled filter, when kept from an earlier start
        bundle = write_bundle(os.path.join(ctr_dir, "bundle"), spec, seccomp_filter)
        learn = seccomp_filter.learn if seccomp_filter is not None and seccomp_filter.wanted else None
        system.containers.set_running(rec.id, watchdog.pid)  # its keeper: Up while it lives
        oom = None
        if launch.host_config.get("Memory"):  # only a memory limit lets the kernel OOM-kill in its cgroup
            from lamina.runtime.cgroups import OomProbe

            oom = OomProbe(spec.cgroups_path)
        try:
            if detached is not None:
                from lamina.runtime.detached import run_detached

                # what the monitor needs to hand this run to its lean relay (lamina/handover.py)
                detached.watchdog, detached.oom, detached.finish = watchdog, oom, finish
                code = run_detached(system.runtime, rec.id, os.path.dirname(bundle), tty=launch.tty,
                                    sink=detached.sink, started=detached.started, after_exit=oom,
                                    stdin=launch.interactive, stdin_once=bool(rec.config.get("StdinOnce")),
                                    keep=getattr(detached, "keep", None), learn=learn)
            elif output is None:
                log_sink = _foreground_log(system, rec, launch)
                try:
                    code = system.runtime.run(rec.id, os.path.dirname(bundle), tty=launch.tty,
                                              interactive=launch.interactive, after_exit=oom, log_sink=log_sink,
                                              learn=learn)
                finally:
                    if log_sink is not None:  # before the exit is recorded: `logs -f` then has it all
                        log_sink.close()
            else:
                with output:
                    code = system.runtime.run(rec.id, os.path.dirname(bundle), tty=launch.tty,
                                              interactive=launch.interactive, after_exit=oom, learn=learn)
        except BaseException as e:
            # a monitor's restart that failed to start ends with its last run's code, as dockerd's
            failed = getattr(detached, "last_code", None)
            if failed is None and isinstance(e, LaminaError) and not getattr(detached, "ran", False):
                # the runtime refused to start it (its errors come only before the container
                # runs): dockerd leaves it as it was, Created, or Exited with its last times
                system.containers.unstart(rec)
            else:
                system.containers.set_exited(rec.id, 137 if failed is None else failed)
            raise
        # a monitor's run: Restarting at once when its policy brings it back (monitor.py);
        # State.OOMKilled, as docker sets it at each exit, in the same transaction
        system.containers.set_exited(rec.id, code, getattr(detached, "restart", None),
                                     None if oom is None else oom.killed)
        if finish is not None:
            finish()
        return code
    finally:
        try:
            if endpoint is not None:
                release(system, rec.id)
            snap.unmount(ctr_dir)
        finally:
            watchdog.done()


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


def ensure_mount_points(rootfs: str, binds, tmpfs=()) -> None:
    """Make the binds' missing mount points (a directory, or an empty file for a file's
    bind) inside the root, through the image's own links, as runc makes them: crun does
    not follow a link to a missing place ("openat2 `esc`: No such file or directory")
    where docker's runc makes it.  The tmpfs destinations too: crun would make them with
    the tmpfs's mode (1755), where runc's 0755 is what `cp` of the mount point shows.
    What cannot be made is left for the runtime to refuse with its own error."""
    from lamina.archive.inroot import InRoot, MissingPath, make_dirs, resolve_leaf

    tree = InRoot(rootfs)
    try:
        for bind in binds:
            source = getattr(bind, "source", None)
            try:
                if source is None or not os.path.lexists(source):
                    continue
                if os.path.isdir(source):
                    make_dirs(tree, bind.destination)
                    continue
                parent, name = resolve_leaf(tree, bind.destination)
                # O_EXCL: only made, never opened (an image's FIFO would block, its device node is the host's)
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755,
                                 dir_fd=tree.dir_fd(parent)))
            except (OSError, MissingPath):
                continue
        for destination in tmpfs:
            try:
                make_dirs(tree, destination)
            except OSError:
                continue
    finally:
        tree.close()


def write_etc_files(ctr_dir: str, hostname: str, network: str, endpoint=None, host_config=None,
                    domainname: str = "") -> tuple[str, str, str]:
    """Per-container /etc/hosts, /etc/hostname and /etc/resolv.conf (bind-mounted,
    so they never land in the writable layer or in `diff`), as docker writes them:
    the host's files for `host`; otherwise docker's hosts (with the container's
    address for its hostname on the bridge) and the host's resolv.conf without
    the nameservers a private namespace cannot reach; `--network container:NAME`
    sees that container's files.  HostConfig's ExtraHosts, Dns, DnsSearch and
    DnsOptions and the Domainname apply as docker applies them."""
    from lamina.network.resolvconf import for_namespace

    hc = host_config or {}
    dns = {"dns": hc.get("Dns") or (), "search": hc.get("DnsSearch") or (), "options": hc.get("DnsOptions") or ()}
    extra = "".join(f"{address}\t{name}\n" for name, address in _extra_hosts(hc.get("ExtraHosts")))
    hosts = os.path.join(ctr_dir, "hosts")
    resolv = os.path.join(ctr_dir, "resolv.conf")
    etc_from = endpoint.etc_from if endpoint is not None else ""
    if network == "host" or etc_from:
        srcs = ("/etc/hosts", "/etc/resolv.conf") if not etc_from else (os.path.join(etc_from, "hosts"),
                                                                          os.path.join(etc_from, "resolv.conf"))
        for src, dst in zip(srcs, (hosts, resolv)):
            try:  # a plain copy: shutil costs ~4 ms of start-up (it imports bz2 and lzma)
                with open(src, "rb") as f:
                    data = f.read()
            except OSError:
                data = b""
            if dst == hosts and extra:
                data += extra.encode()
            if dst == resolv and any(dns.values()):
                data = for_namespace(data.decode(errors="replace"), **dns).encode()
            with open(dst, "wb") as f:
                f.write(data)
    else:
        with open(hosts, "w") as f:
            f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                    "ff02::2\tip6-allrouters\n" + extra)
            if hostname and endpoint is not None and endpoint.address is not None:
                fqdn = f"{hostname}.{domainname}" if domainname else hostname
                f.write(f"{endpoint.address}\t{hosts_names(fqdn)}\n")
        with open(resolv, "w") as f:
            f.write(for_namespace(resolver=endpoint.nameserver if endpoint is not None else "", **dns))
    hostname_file = os.path.join(ctr_dir, "hostname")
    with open(hostname_file, "w") as f:
        f.write(hostname + "\n")
    return hosts, hostname_file, resolv


def hosts_names(hostname: str) -> str:
    """The names of the container's own /etc/hosts line as libnetwork writes them:
    an FQDN is followed by its first label (`web.example.com web`)."""
    first, dot, _ = hostname.partition(".")
    return f"{hostname} {first}" if dot else hostname


def _extra_hosts(entries) -> list[tuple[str, str]]:
    """--add-host's `name:address` pairs; `host-gateway` is the host's address on the
    default bridge (dockerd's default for it: docker0's gateway)."""
    out = []
    for entry in entries or ():
        name, _, address = entry.partition(":")
        if address == "host-gateway":
            from lamina.network import bridge

            address = str((bridge.current() or bridge.ensure()).gateway)
        out.append((name, address))
    return out
