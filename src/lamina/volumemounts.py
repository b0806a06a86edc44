"""A container's volumes, as dockerd handles them: resolved at create (`-v NAME:/p`,
`-v /p`, `--mount type=volume`, the image's VOLUME entries: volumes made when
missing, anonymous ones with a 64-hex name), bound into the container at each
start through the same BindMount path as `-v /host:/p` (runtime/spec.py), the
image's content at the mount point copied into an empty volume on first use
(docker's copy-up: owners, modes, xattrs kept; not with `nocopy`), and at `rm`
forgotten, the anonymous ones removed with `rm -v` and `run --rm`.

Copy-up reads the container's mounted rootfs through archive/inroot.py's fd
walk, so an image's symlink at or above the mount point resolves inside the
rootfs, never on the host.
"""

from __future__ import annotations

import os

from lamina.errors import InvalidParameter, RuntimeFailure
from lamina.record import record

_MODES = {"rw": "rw", "ro": "rw", "z": "label", "Z": "label", "nocopy": "copy",
          "shared": "propagation", "rshared": "propagation", "slave": "propagation", "rslave": "propagation",
          "private": "propagation", "rprivate": "propagation"}


@record
class VolumeSpec:
    """One volume a container asks for (a run flag or an image VOLUME)."""

    name: str            # "" for an anonymous volume
    destination: str
    mode: str = ""       # inspect's Mounts Mode: as given, "z" for a named -v or --mount without one
    readonly: bool = False
    copy: bool = True
    bind_text: str = ""  # HostConfig.Binds' entry ("" for -v /path: Config.Volumes, or --mount: HostConfig.Mounts)

    @property
    def source(self) -> str:  # what a BindMount shows of it (lifecycle's Binds, hostopts' destinations)
        return self.name


def store(system):
    from lamina.store.volumes import VolumeStore

    return VolumeStore(system.root, system.db)


def check_mode(mode: str) -> dict:
    """docker's ValidMountMode: known words, at most one of each kind; {kind: word}."""
    kinds: dict[str, str] = {}
    for word in mode.split(","):
        kind = _MODES.get(word)
        if kind is None or kind in kinds:
            raise InvalidParameter(f"invalid mode: {mode}")
        kinds[kind] = word
    return kinds


def parse(spec: str) -> VolumeSpec:
    """`-v NAME:/path[:mode]` or `-v /path` (an absolute host source is lifecycle's bind)."""
    from lamina.store.volumes import check_name

    parts = spec.split(":")
    if len(parts) > 3:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        name, target, mode = "", parts[0], ""
    else:
        name, target, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
    kinds = check_mode(mode) if mode else {}
    if "propagation" in kinds:
        raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount config for type \"volume\": "
                               "field BindOptions must not be specified")
    check_target(spec, target)
    if name:
        check_name(name)
    if len(parts) == 1:
        return VolumeSpec("", os.path.normpath(target))
    return VolumeSpec(name, os.path.normpath(target), mode or "z", kinds.get("rw") == "ro",
                      "copy" not in kinds, spec if name else "")


def check_target(spec: str, target: str, kind: str = "volume") -> None:
    prefix = f"invalid volume specification: '{spec}': " if spec else ""
    if not target.startswith("/"):
        raise InvalidParameter(f"{prefix}invalid mount config for type \"{kind}\": invalid mount path: '{target}' "
                               "mount path must be absolute")
    if os.path.normpath(target) == "/":
        raise InvalidParameter(f"{prefix}invalid mount config for type \"{kind}\": invalid specification: "
                               "destination can't be '/'")


def volume_specs(mounts) -> list:
    """HostConfig.Mounts checked as dockerd checks them (also an Engine API client's);
    the volume ones as VolumeSpec values."""
    specs = []
    for m in mounts:
        kind, src, target = m.get("Type", ""), m.get("Source", ""), m.get("Target", "")
        if kind not in ("volume", "bind", "tmpfs"):
            raise InvalidParameter(f'invalid mount config for type "{kind}": mount type unknown')
        check_target("", target, kind)
        if kind == "volume":
            if src:
                from lamina.store.volumes import check_name

                check_name(src)
            nocopy = bool((m.get("VolumeOptions") or {}).get("NoCopy"))
            specs.append(VolumeSpec(src, os.path.normpath(target), "z", bool(m.get("ReadOnly")), not nocopy, ""))
        elif kind == "bind":
            if not src:
                raise InvalidParameter('invalid mount config for type "bind": field Source must not be empty')
            if not os.path.exists(src):
                raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not exist: '
                                       f"{src}")
        elif src:
            raise InvalidParameter('invalid mount config for type "tmpfs": field Source must not be specified')
        elif (m.get("TmpfsOptions") or {}).get("Mode") is not None:
            raise InvalidParameter('invalid mount config for type "tmpfs": lamina does not set tmpfs-mode yet')
    return specs


def attach(system, container_id: str, specs, image_volumes, taken=()) -> None:
    """Make (or find) the volumes of a new container and record its mounts: the run
    flags' `specs` (-v, --mount type=volume), the mounts of --volumes-from's
    containers where no flag put one, then an anonymous volume for each image VOLUME
    that nothing covers (nor a host bind at `taken`, nor a --mount bind or tmpfs), as
    dockerd's create does.  Everything is checked before a volume is made, and the
    anonymous volumes made are removed again if a later one fails."""
    from lamina.store.volumes import VolumeMount

    vols = store(system)
    host = system.containers.get(container_id).host_config
    # `-v /p` is Config.Volumes' (`image_volumes` has it): like an image VOLUME, a flag's mount there wins
    specs = [s for s in specs if s.name or s.mode] + volume_specs(host.get("Mounts") or ())
    seen = set(taken) | {os.path.normpath(m["Target"]) for m in host.get("Mounts") or () if m["Type"] != "volume"}
    for spec in specs:
        if spec.destination in seen:
            raise InvalidParameter(f"Duplicate mount point: {spec.destination}")
        seen.add(spec.destination)
        found = vols.find(spec.name) if spec.name else None
        if found is not None and found.options and spec.readonly:
            raise InvalidParameter(f"{found.name}: lamina mounts a tmpfs volume read-write only")
    shared = []
    for entry in host.get("VolumesFrom") or ():
        name, _, mode = entry.partition(":")
        if mode not in ("", "ro", "rw"):
            raise InvalidParameter(f"invalid mode: {mode}")
        for m in vols.mounts_of(system.containers.resolve(name).id):  # never copied up again
            if m.destination not in seen:
                seen.add(m.destination)
                shared.append(VolumeMount(container_id, m.destination, m.volume, "", m.rw and mode != "ro",
                                          False, m.anonymous))  # Mode "": as dockerd shows a copied mount point
    image = []
    for path in sorted(image_volumes or ()):
        dest = os.path.normpath(path) if path.startswith("/") else None
        if dest is not None and dest not in seen and dest != "/":
            seen.add(dest)
            image.append(dest)
    made: list[str] = []
    try:
        mounts = []
        for spec in specs:
            vol = vols.create(spec.name or None)
            if not spec.name:
                made.append(vol.name)
            mounts.append(VolumeMount(container_id, spec.destination, vol.name, spec.mode, not spec.readonly,
                                      spec.copy, not spec.name))
        for dest in image:
            vol = vols.create(None)
            made.append(vol.name)
            mounts.append(VolumeMount(container_id, dest, vol.name, "", True, True, True))
        if mounts or shared:
            vols.add_mounts(mounts + shared)
    except BaseException:
        for name in made:
            vols.remove(name, force=True)
        raise


def for_start(system, rec) -> tuple[tuple, tuple, object]:
    """What a start adds to the host binds: (bind mounts: the volumes and --mount
    binds, tmpfs mounts of --mount, the copy-up `prepare` hook or None)."""
    from lamina.runtime.specmounts import BindMount, TmpfsMount

    vols = store(system)
    binds, tmpfs = [], []
    for m in rec.host_config.get("Mounts") or ():
        if m["Type"] == "bind":
            binds.append(BindMount(m["Source"], os.path.normpath(m["Target"]), bool(m.get("ReadOnly"))))
        elif m["Type"] == "tmpfs":
            tmpfs.append(TmpfsMount(os.path.normpath(m["Target"]), (m.get("TmpfsOptions") or {}).get("SizeBytes")))
    for m in vols.mounts_of(rec.id):
        size = _tmpfs_volume(vols, m.volume)
        if size is None:
            binds.append(BindMount(vols.mountpoint(m.volume), m.destination, not m.rw))
        else:  # a tmpfs volume: the runtime mounts it in the container, nothing is mounted on the host
            tmpfs.append(TmpfsMount(m.destination, size or None))
    return tuple(binds), tuple(tmpfs), copy_up_hook(system, rec.id)


def _tmpfs_volume(vols, name: str) -> int | None:
    from lamina.store.volumes import tmpfs_size

    vol = vols.find(name)
    return tmpfs_size(vol.options) if vol is not None and vol.options else None


def copy_up_hook(system, container_id: str):
    """runner.run_container's `prepare`: the image's content into empty volumes, once
    the rootfs is mounted; None when no mount asks for it."""
    vols = store(system)
    pending = [m for m in vols.mounts_of(container_id) if m.copy and _tmpfs_volume(vols, m.volume) is None]
    if not pending:
        return None

    def prepare(rootfs: str):
        for m in pending:
            copy_up(rootfs, m.destination, vols.mountpoint(m.volume))
            vols.set_copied(container_id, m.destination)
        return None

    return prepare


def copy_up(rootfs: str, path: str, data_dir: str) -> bool:
    """Copy the directory at `path` in the rootfs (resolved inside it) into the
    volume's `data_dir` if that is empty: into a private directory beside it, then
    renamed over the empty one, so a killed copy never leaves a half-filled volume."""
    from lamina.archive.inroot import InRoot, find_dir
    from lamina.archive.rmtree import remove_path
    from lamina.runtime.process import spawn

    try:
        if os.listdir(data_dir):
            return False
    except FileNotFoundError:
        return False
    tree = InRoot(rootfs)
    try:
        try:
            real = find_dir(tree, path)
        except OSError:  # not a directory in the image: nothing to copy, as docker
            return False
        if real is None:
            return False
        fd = os.dup(tree.dir_fd(real))
        os.set_inheritable(fd, True)  # for cp (posix_spawn keeps only inheritable fds)
    finally:
        tree.close()
    _sweep_copies(os.path.dirname(data_dir))
    tmp = os.path.join(os.path.dirname(data_dir), f".copyup-{os.getpid()}-{os.urandom(8).hex()}")
    try:
        os.mkdir(tmp, 0o700)
        cp = "/usr/bin/cp" if os.path.exists("/usr/bin/cp") else "/bin/cp"
        # the source is the fd itself: cp -a never dereferences what is below it
        pid = spawn([cp, "-a", "--reflink=auto", f"/proc/self/fd/{fd}/.", tmp + "/"], stdin=None,
                    pass_fds=(fd,))
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeFailure(f"copying the image's content at {path} into its volume failed")
        try:
            os.rename(tmp, data_dir)  # replaces the empty directory in one step
        except OSError:  # filled meanwhile by another container: its content stays
            return False
        return True
    finally:
        os.close(fd)
        if os.path.lexists(tmp):
            remove_path(tmp)


def _sweep_copies(vol_dir: str) -> None:
    """What a killed copy-up left beside a volume's _data (its writer is gone)."""
    from lamina.archive.rmtree import remove_path
    from lamina.store.db import pid_alive

    for name in os.listdir(vol_dir):
        if name.startswith(".copyup-"):
            pid = name.split("-")[1]
            if pid.isdigit() and not pid_alive(int(pid)):
                remove_path(os.path.join(vol_dir, name))


def release(system, container_id: str, *, remove_anonymous: bool) -> None:
    """A container is being removed: its mounts are forgotten and, with `rm -v` or
    `--rm`, its anonymous volumes removed (those no other container uses)."""
    from lamina.errors import Conflict, NotFound

    vols = store(system)
    for name in vols.drop_mounts(container_id):
        if remove_anonymous:
            try:
                vols.remove(name)
            except (Conflict, NotFound):
                pass  # another container mounts it (--volumes-from): kept, as dockerd


def inspect_mounts(system, rec) -> list[dict]:
    """inspect's Mounts: the host binds, then the volumes, docker-shaped."""
    out = []
    for b in rec.host_config.get("Binds") or []:
        src, _, rest = b.partition(":")
        if not src.startswith("/"):
            continue  # a named volume's entry: listed below from its mount row
        dst, _, mode = rest.partition(":")
        out.append({"Type": "bind", "Source": src, "Destination": dst, "Mode": mode, "RW": mode != "ro",
                    "Propagation": "rprivate"})
    for m in rec.host_config.get("Mounts") or ():  # --mount's binds and tmpfs (its volumes: rows below)
        if m["Type"] == "bind":
            out.append({"Type": "bind", "Source": m["Source"], "Destination": m["Target"], "Mode": "",
                        "RW": not m.get("ReadOnly"), "Propagation": "rprivate"})
        elif m["Type"] == "tmpfs":
            out.append({"Type": "tmpfs", "Source": "", "Destination": m["Target"], "Mode": "", "RW": True,
                        "Propagation": ""})
    vols = store(system)
    for m in vols.mounts_of(rec.id):
        out.append({"Type": "volume", "Name": m.volume, "Source": vols.mountpoint(m.volume),
                    "Destination": m.destination, "Driver": "local", "Mode": m.mode, "RW": m.rw,
                    "Propagation": ""})
    return out


def check(system) -> tuple[list[str], list[str]]:
    """`system check`'s part: every volume row has its directory, every mount row a
    container and a volume; an unlisted volume directory (a crash between directory
    and row) is a note: the next create of that name takes it over."""
    vols = store(system)
    problems, notes = [], []
    names = {v.name for v in vols.list()}
    for name in sorted(names):
        if not os.path.isdir(vols.mountpoint(name)):
            problems.append(f"volume {name}: directory is missing")
    containers = {r[0] for r in system.db.execute("SELECT id FROM containers")}
    for cid, dest, name in system.db.execute("SELECT container_id, destination, volume FROM volume_mounts"):
        if cid not in containers:
            problems.append(f"volume {name}: mounted at {dest} by a container that does not exist ({cid[:12]})")
        if name not in names:
            problems.append(f"container {cid[:12]}: volume {name} at {dest} does not exist")
    try:
        on_disk = set(os.listdir(vols.dir))
    except FileNotFoundError:
        on_disk = set()
    stray = on_disk - names
    if stray:
        notes.append(f"{len(stray)} volume directory(ies) without a record: " + ", ".join(sorted(stray)))
    return problems, notes
