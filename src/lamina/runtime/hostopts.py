"""run's device, mount and kernel options: --device, --tmpfs, --read-only, --sysctl,
--shm-size, --group-add (plus the capability flags, through runtime/capabilities.py).

Two halves, as docker splits them.  `host_config_from(args)` is the CLI and dockerd's
create: the flags become docker-shaped HostConfig keys (only the keys a flag set),
refused with docker's texts (the CLI's bare, exit 125; dockerd's as
InvalidParameter).  `apply_host(config, host, rootfs)` is dockerd's start: it changes
the default config.json runtime/spec.py built (devices and their cgroup rules, sysctls,
/dev/shm's size, tmpfs mounts, extra groups, no-new-privileges, and --privileged: all
host devices, no seccomp, no masked or read-only paths, /sys and cgroups writable).
"""

from __future__ import annotations

import os
import posixpath

from lamina.errors import InvalidParameter, OptionError, RuntimeFailure

# The HostConfig keys this module and capabilities.py act on: spec.py looks for them.
KEYS = ("CapAdd", "CapDrop", "Privileged", "SecurityOpt", "MaskedPaths", "ReadonlyPaths", "Devices", "Tmpfs",
        "Sysctls", "ShmSize", "GroupAdd")
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
# The docker CLI's ValidateSysctl: the namespaced sysctls (IPC, mqueue, network).
IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})
# moby's mount flags (pkg/mount): what a --tmpfs option may be besides KEY=VALUE.
TMPFS_FLAGS = frozenset("""defaults ro rw suid nosuid dev nodev exec noexec sync async dirsync remount mand nomand
atime noatime diratime nodiratime bind rbind unbindable runbindable private rprivate shared rshared slave
rslave relatime norelatime strictatime nostrictatime""".split())
TMPFS_DATA = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"})
# Options cancelling each other share a key (moby's flag value); propagation has one key.
_FLAG_KEY = {"ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev",
             "nodev": "nodev", "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync",
             "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime", "diratime": "nodiratime",
             "nodiratime": "nodiratime", "relatime": "relatime", "norelatime": "relatime",
             "strictatime": "strictatime", "nostrictatime": "strictatime"}


# ------------------------------------------------------------------ flags (create)


def valid_sysctl(value: str) -> str | None:
    """docker's opts.ValidateSysctl, as a flag validator (pflag's `invalid argument` line)."""
    name = value.split("=")[0]
    if "=" in value and (name in IPC_SYSCTLS or name.startswith(("net.", "fs.mqueue."))):
        return None
    return f"sysctl '{value}' is not allowed"


def host_config_from(args, bind_destinations=()) -> dict:
    """The HostConfig keys run/create's flags give (only those a flag set)."""
    out: dict = {}
    if args.cap_add or args.cap_drop or args.privileged or args.security_opt:
        from lamina.runtime.capabilities import host_config_from as capability_keys

        out.update(capability_keys(args))
    if args.device:
        out["Devices"] = [parse_device(d) for d in args.device]
    if args.tmpfs:
        out["Tmpfs"] = parse_tmpfs(args.tmpfs, bind_destinations)
    if args.read_only:
        out["ReadonlyRootfs"] = True
    if args.sysctl:
        out["Sysctls"] = dict(s.partition("=")[::2] for s in args.sysctl)
    if args.shm_size is not None:
        from lamina.units import ram_in_bytes

        out["ShmSize"] = ram_in_bytes(args.shm_size) or DEFAULT_SHM_SIZE  # 0: dockerd's default
    if args.group_add:
        out["GroupAdd"] = list(args.group_add)
    return out


def parse_device(value: str) -> dict:
    """The docker CLI's validateDevice + parseDevice: HOST[:CTR][:rwm]."""
    parts = value.split(":")
    if len(parts) > 3 or not parts[0]:
        raise OptionError(f"bad format for path: {value}")
    host, ctr, perms = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if _device_mode(parts[1]):
            perms = parts[1]
        else:
            ctr = parts[1]
    elif len(parts) == 3:
        ctr, perms = parts[1], parts[2]
        if not _device_mode(perms):
            raise OptionError(f"bad mode specified: {perms}")
    if not ctr.startswith("/"):
        raise OptionError(f"{ctr} is not an absolute path")
    if len(parts) < 3:  # the CLI cleans the path it checked (not a three-part one)
        ctr = posixpath.normpath(ctr)
        host = ctr if len(parts) == 1 else host
    return {"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms}


def _device_mode(mode: str) -> bool:
    return bool(mode) and set(mode) <= set("rwm") and len(set(mode)) == len(mode)


def parse_tmpfs(values, bind_destinations=()) -> dict:
    """`--tmpfs PATH[:OPTIONS]` as HostConfig.Tmpfs (the last one for a path wins), with
    dockerd's checks at create."""
    out = {}
    for value in values:
        path, _, options = value.partition(":")
        out[path] = options
    binds = {posixpath.normpath(d) for d in bind_destinations}
    for path, options in out.items():
        if not path.startswith("/"):
            raise InvalidParameter(f"invalid mount path: '{path}' mount path must be absolute")
        if posixpath.normpath(path) == "/":
            raise InvalidParameter("invalid specification: destination can't be '/'")
        if posixpath.normpath(path) in binds:
            raise InvalidParameter(f"Duplicate mount point: {path}")
        tmpfs_options(options)
    return out


def tmpfs_options(data: str) -> list[str]:
    """moby's MergeTmpfsOptions over docker's defaults: a later option replaces an
    earlier one of the same kind; an unknown one is refused as dockerd refuses it."""
    options = ["noexec", "nosuid", "nodev", "rprivate"] + (data.split(",") if data else [])
    seen: set[str] = set()
    out: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        if option in TMPFS_FLAGS:
            key = "propagation" if option.endswith(("private", "shared", "slave", "bindable")) else \
                _FLAG_KEY.get(option, option)
        else:
            name, eq, _ = option.partition("=")
            if not eq or name not in TMPFS_DATA:
                shown = " ".join(f'"{p}"' for p in option.split("=", 1))  # Go's %q of a []string
                raise InvalidParameter(f"invalid tmpfs option [{shown}]")
            key = "=" + name
        if key not in seen:
            seen.add(key)
            out.insert(0, option)
    return out


def with_defaults(host: dict) -> dict:
    """`host` with dockerd's values for the keys of these flags it lacks, as inspect
    shows them (dockerd fills the masked and read-only paths in at create, but for
    --privileged)."""
    from lamina.runtime.spec import MASKED_PATHS, READONLY_PATHS

    privileged = bool(host.get("Privileged"))
    defaults = {"CapAdd": None, "CapDrop": None, "Privileged": False, "SecurityOpt": None, "ReadonlyRootfs": False,
                "ShmSize": DEFAULT_SHM_SIZE, "GroupAdd": None, "Devices": [], "DeviceCgroupRules": None,
                "MaskedPaths": None if privileged else list(MASKED_PATHS),
                "ReadonlyPaths": None if privileged else list(READONLY_PATHS)}
    return {**host, **{k: v for k, v in defaults.items() if k not in host}}


# ------------------------------------------------------------------ config.json (start)


def apply_host(config: dict, host: dict, rootfs: str) -> None:
    """Change docker's default config.json for the container's HostConfig `host`."""
    from lamina.runtime.capabilities import no_new_privileges

    linux = config["linux"]
    process = config["process"]
    process["noNewPrivileges"] = no_new_privileges(host.get("SecurityOpt"))
    privileged = bool(host.get("Privileged"))
    if privileged:
        linux.pop("seccomp", None)
        for m in config["mounts"]:  # dockerd: /sys and the cgroup mount read-write
            if m["type"] in ("sysfs", "cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"]
    if privileged or host.get("MaskedPaths") is not None:
        linux["maskedPaths"] = [] if privileged else list(host["MaskedPaths"])
    if privileged or host.get("ReadonlyPaths") is not None:
        linux["readonlyPaths"] = [] if privileged else list(host["ReadonlyPaths"])
    _devices(linux, host, privileged)
    if host.get("Sysctls"):
        linux["sysctl"] = {**linux.get("sysctl", {}), **host["Sysctls"]}
    if host.get("ShmSize"):
        for m in config["mounts"]:
            if m["destination"] == "/dev/shm" and m["source"] == "shm":
                m["options"] = [o for o in m["options"] if not o.startswith("size=")] + [f"size={host['ShmSize']}"]
    if host.get("Tmpfs"):
        taken = {posixpath.normpath(d) for d in host["Tmpfs"]}
        mounts = [m for m in config["mounts"] if posixpath.normpath(m["destination"]) not in taken]
        added = [{"destination": d, "type": "tmpfs", "source": "tmpfs", "options": tmpfs_options(o)}
                 for d, o in host["Tmpfs"].items()]
        # dockerd sorts its mounts by depth: parents first
        mounts += sorted(added, key=lambda m: posixpath.normpath(m["destination"]).count("/"))
        config["mounts"] = mounts
    if host.get("GroupAdd"):
        from lamina.runtime.idnames import lookup_groups

        user = process["user"]
        extra = lookup_groups(rootfs, host["GroupAdd"])
        user["additionalGids"] = list(dict.fromkeys([*user["additionalGids"], *extra]))


def _devices(linux: dict, host: dict, privileged: bool) -> None:
    devices, rules = [], []
    if privileged:
        devices = host_devices("/dev")
    for mapping in host.get("Devices") or ():
        src, dst = mapping["PathOnHost"], mapping["PathInContainer"]
        if privileged and src == dst:  # dockerd: already there with all of /dev
            continue
        found = devices_from_path(src, dst)
        perms = "rwm" if privileged else mapping.get("CgroupPermissions") or "rwm"
        devices += found
        rules += [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"], "access": perms}
                  for d in found]
    if devices:
        linux["devices"] = devices
    if privileged:
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    elif rules:
        linux["resources"]["devices"] = linux["resources"]["devices"] + rules


def devices_from_path(src: str, dst: str) -> list[dict]:
    """dockerd's getDevicesFromPath: a device node, or every node under a directory."""
    resolved = os.path.realpath(src) if os.path.islink(src) else src
    try:
        return [_device(resolved, dst)]
    except OSError as e:
        error = e
    if error.errno == 0 and os.path.isdir(resolved):
        found = []
        for top, dirs, files in os.walk(resolved):
            for name in sorted(dirs + files):
                path = os.path.join(top, name)
                try:
                    found.append(_device(path, dst + path[len(resolved):]))
                except OSError:
                    pass
        if found:
            return found
    reason = "not a device node" if error.errno == 0 else (error.strerror or str(error)).lower()
    failure = RuntimeFailure(f"error gathering device information while adding custom device \"{src}\": {reason}")
    if error.errno == 2:
        failure.exit_code = 127  # the docker CLI's exit for a start error about a missing file
    raise failure


def _device(path: str, ctr_path: str) -> dict:
    import stat

    st = os.lstat(path)  # runc's DeviceFromPath: a link is not a device
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise OSError(0, "not a device node")
    return {"path": ctr_path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def host_devices(top: str) -> list[dict]:
    """runc's HostDevices: every character and block device under /dev, but the ones
    the container gets its own of (pts, shm, mqueue, console) and fifos."""
    out = []
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"):
                out += host_devices(entry.path)
            continue
        if entry.name == "console" or entry.is_symlink():
            continue
        try:
            out.append(_device(entry.path, entry.path))
        except OSError:
            continue
    return out
