"""The OCI runtime config.json for one container, with Docker 20.10's defaults.

`build_spec` is a pure function of a frozen `RunSpec` (plus the NOFILE hard
limit, passed in or read once), so it is trivially testable and diffable
against the config.json dockerd writes.  `write_bundle` adds the checks that
need the rootfs and writes the file.

What we deliberately copy from Docker (daemon/oci_linux.go, oci/defaults.go):
capabilities (bounding set only for a non-root uid), masked/readonly paths,
default mounts and their options, the device cgroup allow-list, namespaces,
env construction, the two network sysctls.  What we deliberately do
differently: inheritable/ambient caps are written as empty lists
(CVE-2022-29162 / CVE-2022-24769), RLIMIT_NOFILE is explicit (never above our
hard limit: setting it higher needs CAP_SYS_RESOURCE and runc would fail),
oomScoreAdj is not set (lowering it needs CAP_SYS_RESOURCE too), and a
WorkingDir under /proc is refused (CVE-2024-21626).  Docker's default seccomp
profile is emitted for runc to apply (runtime/seccomp.py, imported only here).
"""

from __future__ import annotations

import os
import posixpath

from lamina.errors import ContainerCommandNotFound, RuntimeFailure
from lamina.record import record
from lamina.runtime.rootfs import DEFAULT_PATH, UserIds, find_executable, resolved_workdir_is_proc
from lamina.runtime.specmounts import bind_views, config_mounts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lamina.runtime.specmounts import BindMount, TmpfsMount

OCI_VERSION = "1.0.2-dev"  # what runc 1.1 and dockerd 20.10 write
NOFILE = 1048576

# Docker's default capability set, in Docker's order (oci/caps/defaults.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
)

READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

NETWORK_MODES = ("host", "none")
# The HostConfig keys runtime/hostopts.py applies (its KEYS: here, so a plain run imports neither module)
_HOST_KEYS = ("CapAdd", "CapDrop", "Privileged", "SecurityOpt", "MaskedPaths", "ReadonlyPaths", "Devices", "Tmpfs",
              "Sysctls", "ShmSize", "GroupAdd")

ROOT = UserIds(uid=0, gid=0, additional_gids=(0,), home="/root")


@record
class RunSpec:
    """Everything config.json depends on; the caller resolves images, users and paths.

    `env` is the image env merged with the user's (`K=V`; a bare `K` unsets K).
    `network`: "host" (share ours), "none" (own namespace, only lo), or an
    absolute path of a network namespace to join (the bridge's, see lamina.network).
    `console_size` is (rows, cols), applied by runc before the process starts so
    `stty size` is right from the first instruction.
    """

    args: tuple[str, ...]
    rootfs: str
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: UserIds = ROOT
    terminal: bool = False
    console_size: tuple[int, int] | None = None
    hostname: str = ""
    network: str = "none"
    mounts: tuple[BindMount, ...] = ()
    readonly_rootfs: bool = False
    hosts_file: str | None = None
    hostname_file: str | None = None
    resolv_conf_file: str | None = None
    cgroups_path: str | None = None
    seccomp: str = "default"  # "unconfined", or a profile's JSON text (--security-opt seccomp=...)
    tmpfs: tuple[TmpfsMount, ...] = ()  # mounted last, over everything else
    host: dict | None = None  # the container's HostConfig: capabilities, devices, ... (runtime/hostopts.py)
    resources: dict | None = None  # HostConfig's limits (Memory, NanoCpus, Ulimits, ...): runtime/resources.py


def build_spec(spec: RunSpec, *, nofile_hard: int | None = None) -> dict:
    """The config.json dict for `spec`.  Raises RuntimeFailure for a spec docker would refuse."""
    _validate(spec)
    if nofile_hard is None:
        nofile_hard = current_nofile_hard()
    nofile = NOFILE if nofile_hard < 0 else min(NOFILE, nofile_hard)  # < 0: RLIM_INFINITY

    caps = list(DEFAULT_CAPABILITIES)
    # (every container records SecurityOpt: None, Privileged: False... are the defaults)
    host = spec.host if spec.host and any(spec.host.get(k) not in (None, False) for k in _HOST_KEYS) else None
    if host is not None:  # --cap-add, --privileged...: imported only then
        from lamina.runtime.capabilities import effective

        caps = list(effective(host, caps))
    # Like Docker ≥ 20.10.14: a non-root process keeps the bounding set only, so it
    # holds no capability unless it execs a file that has some.
    active = caps if spec.user.uid == 0 else []
    process: dict = {
        "terminal": spec.terminal,
        "user": {
            "uid": spec.user.uid,
            "gid": spec.user.gid,
            "additionalGids": list(spec.user.additional_gids),
        },
        "args": list(spec.args),
        "env": container_env(spec.env, spec.hostname, spec.terminal),
        "cwd": spec.cwd,
        "capabilities": {
            "bounding": caps,
            "effective": active,
            "permitted": active,
            "inheritable": [],
            "ambient": [],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": False,
    }
    if spec.terminal and spec.console_size:
        rows, cols = spec.console_size
        process["consoleSize"] = {"height": rows, "width": cols}

    namespaces = [{"type": "mount"}]
    sysctl = {}
    if spec.network != "host":
        # "none": a new, empty one; otherwise the path of one lamina.network prepared.
        namespaces.append({"type": "network"} if spec.network == "none" else
                          {"type": "network", "path": spec.network})
        # Docker ≥ 20.10 sets these in a private network namespace (harmless there).
        sysctl = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
    namespaces += [{"type": "uts"}, {"type": "pid"}, {"type": "ipc"}]

    linux: dict = {
        "resources": {"devices": _device_rules()},
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if sysctl:
        linux["sysctl"] = sysctl
    if spec.cgroups_path:
        linux["cgroupsPath"] = spec.cgroups_path
    from lamina.runtime.seccomp import linux_seccomp  # lazily: only a container start needs the profile

    # Docker resolves the profile's capability conditions against the bounding set.
    seccomp = linux_seccomp(spec.seccomp, caps)
    if seccomp:
        linux["seccomp"] = seccomp

    config: dict = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": spec.rootfs, "readonly": spec.readonly_rootfs},
        "mounts": config_mounts(spec),
        "linux": linux,
    }
    if spec.hostname:
        config["hostname"] = spec.hostname
    if host is not None:  # devices, sysctls, tmpfs, --privileged... as dockerd applies them
        from lamina.runtime.hostopts import apply_host

        apply_host(config, host, spec.rootfs)
        _check_network_sysctls(linux)
    if spec.resources:  # linux.resources and process.rlimits as dockerd writes them
        from lamina.runtime.resources import apply

        apply(config, spec.resources)
    from lamina import rootless

    if rootless():  # inside lamina's user namespace (an ordinary user's lamina)
        from lamina.runtime.rootless import adjust_config

        adjust_config(config)
    return config


def _check_network_sysctls(linux: dict) -> None:
    """runc's refusal of a net.* sysctl in the host's network namespace, in its words, which
    docker prints (crun refuses it in others): checked here, before either runs."""
    if any(ns["type"] == "network" for ns in linux["namespaces"]):
        return
    for name in linux.get("sysctl") or ():
        if name.startswith("net."):
            raise RuntimeFailure(f'sysctl "{name}" not allowed in host network namespace')


def write_bundle(bundle_dir: str, spec: RunSpec, seccomp_filter=None) -> str:
    """Validate `spec` against its rootfs and write `bundle_dir/config.json`; returns its path.
    `seccomp_filter` (runtime/seccompcache.py) may hand crun the profile's compiled filter."""
    config = build_spec(spec)
    if seccomp_filter is not None:
        seccomp_filter.annotate(config)
    if resolved_workdir_is_proc(spec.rootfs, spec.cwd):
        raise RuntimeFailure(f"working directory {spec.cwd} resolves into /proc in the image: refused")
    os.makedirs(bundle_dir, mode=0o700, exist_ok=True)
    path = os.path.join(bundle_dir, "config.json")
    tmp = path + ".tmp"
    from lamina.leanjson import dumps

    data = dumps(config, separators=(",", ":")).encode()
    # No fsync: a bundle is rebuilt for every start, losing it in a crash costs nothing.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def check_command(spec: RunSpec) -> str:
    """Fail fast, before runc runs, when the command cannot be found or executed.

    Resolves `args[0]` the way runc will (the final env's PATH, the cwd) inside the
    rootfs with the bind mounts laid over it (runc looks after mounting); returns
    the in-container path, or raises ContainerCommandNotFound (127),
    ContainerCommandNotExecutable (126) or RuntimeFailure (125) with docker's text.
    """
    _validate(spec)  # first: a NUL byte would otherwise reach a path syscall below
    env = container_env(spec.env, spec.hostname, spec.terminal)
    path = next((e[5:] for e in env if e.startswith("PATH=")), None)
    return find_executable(spec.rootfs, spec.args[0], path, spec.cwd, mounts=bind_views(spec))


def current_nofile_hard() -> int:
    import resource  # only when not given: keeps build_spec pure for tests

    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def container_env(env: tuple[str, ...] | list[str], hostname: str, terminal: bool) -> list[str]:
    """Docker's CreateDaemonEnvironment: PATH, HOSTNAME, TERM first, then `env`
    replacing same-named entries in place or appended; a bare `K` removes K."""
    out = [f"PATH={DEFAULT_PATH}"]
    if hostname:
        out.append(f"HOSTNAME={hostname}")
    if terminal:
        out.append("TERM=xterm")
    index = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    for item in env:
        key, eq, _ = item.partition("=")
        if not eq:
            if key in index:
                out[index[key]] = ""
            continue
        if key in index:
            out[index[key]] = item
        else:
            index[key] = len(out)
            out.append(item)
    return [e for e in out if e]


def _validate(spec: RunSpec) -> None:
    if not spec.args:
        raise RuntimeFailure("No command specified")
    if not spec.args[0]:  # a command given as '': runc looks it up in $PATH, and docker exits 127
        raise ContainerCommandNotFound('exec: "": executable file not found in $PATH')
    _check_nul(spec)
    if not spec.cwd.startswith("/"):
        raise RuntimeFailure(f"the working directory '{spec.cwd}' is invalid, it needs to be an absolute path")
    if _under_proc(spec.cwd):
        # CVE-2024-21626: a cwd of /proc/self/fd/N reached a host fd leaked into runc init.
        raise RuntimeFailure(f"working directory {spec.cwd} is under /proc: refused")
    if not os.path.isabs(spec.rootfs):
        raise RuntimeFailure(f"rootfs path {spec.rootfs} is not absolute")
    if spec.network not in NETWORK_MODES and not spec.network.startswith("/"):
        raise RuntimeFailure(f"unsupported network mode {spec.network!r}: use host or none")
    if len(spec.hostname) > 64:
        raise RuntimeFailure(f"invalid hostname {spec.hostname!r}: longer than 64 characters")
    for m in spec.mounts:
        if not m.destination.startswith("/"):
            raise RuntimeFailure(
                f"invalid mount config for type \"bind\": invalid mount path: '{m.destination}' mount path must be absolute"
            )
        if posixpath.normpath(m.destination) == "/":
            raise RuntimeFailure("invalid mount config for type \"bind\": invalid specification: destination can't be '/'")
        if not os.path.isabs(m.source):
            raise RuntimeFailure(f"invalid mount config for type \"bind\": bind source path {m.source!r} is not absolute")


def _check_nul(spec: RunSpec) -> None:
    """A NUL byte cannot reach execve or a path syscall; say which value has one, in
    runc's words where docker shows them (the values come from images: quoted)."""
    if not any("\0" in text for text in (*spec.args, *spec.env, spec.cwd, spec.hostname)):
        return
    from lamina.quoting import escape_controls, go_quote

    argv0 = spec.args[0]
    if "\0" in argv0:
        raise RuntimeFailure(f"exec: {go_quote(argv0)}: stat {escape_controls(argv0)}: invalid argument")
    for arg in spec.args[1:]:
        if "\0" in arg:
            raise RuntimeFailure(f"exec {escape_controls(argv0)}: invalid argument: "
                                 f"argument {go_quote(arg)} contains a NUL byte")
    for item in spec.env:
        if "\0" in item:
            part = "name" if "\0" in item.partition("=")[0] else "value"
            raise RuntimeFailure(f"environment variable {part} can't contain null(\\x00): {go_quote(item)}")
    if "\0" in spec.cwd:
        raise RuntimeFailure(f"the working directory {go_quote(spec.cwd)} is invalid: it contains a NUL byte")
    if "\0" in spec.hostname:
        raise RuntimeFailure(f"invalid hostname {go_quote(spec.hostname)}: it contains a NUL byte")


def _under_proc(path: str) -> bool:
    clean = posixpath.normpath("/" + path)
    clean = "/" + clean.lstrip("/")  # normpath keeps a leading '//'
    return clean == "/proc" or clean.startswith("/proc/")


def _device_rules() -> list[dict]:
    """Docker's device cgroup allow-list (runc appends its own defaults after it)."""

    def allow(major: int, minor: int) -> dict:
        return {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}

    return [
        {"allow": False, "access": "rwm"},
        allow(1, 5),  # /dev/zero
        allow(1, 3),  # /dev/null
        allow(1, 9),  # /dev/urandom
        allow(1, 8),  # /dev/random
        allow(5, 0),  # /dev/tty
        allow(5, 1),  # /dev/console
        {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},  # /dev/fuse
    ]
