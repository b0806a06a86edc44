"""config.json's mounts: Docker 20.10's defaults, the user's binds, the network files
and tmpfs mounts, in the order runc makes them.

`BindMount` and `TmpfsMount` are what callers put in a RunSpec (runtime/spec.py);
`create` records binds without building a spec, so it imports this module only.
"""

from __future__ import annotations

import posixpath

from lamina.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lamina.runtime.spec import RunSpec


@record
class BindMount:
    """A host path bound into the container (`-v src:dst[:ro]`)."""

    source: str
    destination: str
    readonly: bool = False


@record
class TmpfsMount:
    """A private tmpfs (a build's `RUN --mount=type=tmpfs`)."""

    destination: str
    size: int | None = None


def config_mounts(spec: RunSpec) -> list[dict]:
    """config.json's `mounts` for `spec`: Docker's defaults, then the binds (the user's
    and the network files) parents first, then the tmpfs mounts over everything else."""
    user = [_bind(m.source, m.destination, m.readonly) for m in spec.mounts]
    taken = {posixpath.normpath(m["destination"]) for m in user}
    # Like Docker: the network files are read-only exactly when the rootfs is.
    for src, dst in (
        (spec.resolv_conf_file, "/etc/resolv.conf"),
        (spec.hostname_file, "/etc/hostname"),
        (spec.hosts_file, "/etc/hosts"),
    ):
        if src and dst not in taken:
            user.append(_bind(src, dst, spec.readonly_rootfs))
    # A user mount replaces the default at the same place; one on /dev replaces all of /dev/*.
    over_dev = "/dev" in taken
    defaults = [
        m
        for m in _default_mounts()
        if m["destination"] not in taken and not (over_dev and m["destination"].startswith("/dev/"))
    ]
    # Parents before children (Docker sorts by depth); sorted() is stable for equal depths.
    user.sort(key=lambda m: posixpath.normpath(m["destination"]).count("/"))
    return defaults + user + [_tmpfs(m) for m in spec.tmpfs]


def bind_views(spec: RunSpec) -> tuple[tuple[str, str], ...]:
    """(destination, source) of the bind mounts, in the order runc makes them: a
    command on a `-v` mount is found (docker runs it)."""
    return tuple((m["destination"], m["source"]) for m in config_mounts(spec) if m["type"] == "bind")


def _default_mounts() -> list[dict]:
    """Docker's default mounts, in Docker's order."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        },
    ]


def _bind(source: str, destination: str, readonly: bool) -> dict:
    options = ["rbind", "ro", "rprivate"] if readonly else ["rbind", "rprivate"]
    return {"destination": destination, "type": "bind", "source": source, "options": options}


def _tmpfs(m: TmpfsMount) -> dict:
    options = ["nosuid", "nodev"] + ([f"size={m.size}"] if m.size else [])
    return {"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": options}
