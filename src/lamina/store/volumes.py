"""Named local volumes as docker's `local` driver keeps them: a directory
`<root>/volumes/<name>/_data` (docker's /var/lib/docker/volumes) and a row in
the `volumes` table; which containers mount which volume where is the
`volume_mounts` table (a volume is "in use" while a container, running or not,
has a row; `rm` of the container drops them).

A volume's directory is made before its row and removed after it (store/db.py's
rule), so a crash leaves at most an unlisted directory, which a later create of
the same name takes over.  Names are checked as the local driver checks them, so
a name can never reach outside the volumes directory (`..`, `/`, `a/b`).
"""

from __future__ import annotations

import os
import time

from lamina.errors import Conflict, InvalidParameter, NotFound
from lamina.leanjson import dumps, loads
from lamina.record import record
from lamina.store.db import transaction
from lamina.store.dirs import private_dir

_NAME_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_NAME_REST = _NAME_FIRST + "_.-"
VALID_OPTIONS = ("type", "device", "o")  # the local driver's -o keys on Linux


class NoSuchVolume(NotFound):
    """dockerd's text; `volume inspect`/`rm` print the CLI's own `No such volume: NAME` (the same)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"No such volume: {name}")
        self.name = name


@record
class Volume:
    name: str
    driver: str
    labels: dict
    options: dict
    anonymous: bool        # made for a container (-v /path, VOLUME, --mount without src): rm -v removes it
    created: float
    mountpoint: str        # <root>/volumes/<name>/_data

    def inspect(self) -> dict:
        """docker volume inspect's object (API 1.41: no UsageData unless asked)."""
        return {"CreatedAt": created_at(self.created), "Driver": self.driver, "Labels": self.labels,
                "Mountpoint": self.mountpoint, "Name": self.name, "Options": self.options, "Scope": "local"}


@record
class VolumeMount:
    """One volume mount of one container (a row of volume_mounts)."""

    container_id: str
    destination: str
    volume: str
    mode: str              # as inspect's Mounts shows it: "z" (-v NAME:/p), "ro", "nocopy", "" (anonymous)
    rw: bool
    copy: bool             # copy the image's content at `destination` into an empty volume (not nocopy)
    anonymous: bool        # docker's MountPoint.Named false: `rm -v` and `--rm` remove the volume


def created_at(epoch: float) -> str:
    """Go's time.RFC3339 in local time, as the local driver stamps CreatedAt."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(int(epoch)))
    zone = text[-5:]
    return text[:-5] + ("Z" if zone in ("+0000", "-0000") else f"{zone[:3]}:{zone[3:]}")


def check_name(name: str) -> None:
    """The local driver's validateName, with dockerd's texts (`create NAME: ...`)."""
    from lamina.quoting import go_quote

    if len(name) == 1:
        raise InvalidParameter(f"create {name}: volume name is too short, names should be at least two "
                               "alphanumeric characters")
    if not name or name[0] not in _NAME_FIRST or any(c not in _NAME_REST for c in name[1:]):
        raise InvalidParameter(f"create {name}: {go_quote(name)} includes invalid characters for a local volume "
                               'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                               "directory, use absolute path")


def check_options(name: str, options: dict) -> None:
    """The local driver's validateOpts (dockerd's texts).  Of the mounts the driver
    makes, lamina gives only a tmpfs (`type=tmpfs,device=tmpfs[,o=size=N]`), mounted
    by the runtime in each container (volumemounts.tmpfs_size); others are refused."""
    from lamina.quoting import go_quote

    for key in options:
        if key not in VALID_OPTIONS:
            raise InvalidParameter(f"create {name}: invalid option: {go_quote(key)}")
    if "type" in options and not options.get("device"):
        raise InvalidParameter(f'create {name}: missing required option: "device"')
    if options and tmpfs_size(options) is None:
        raise InvalidParameter(f"create {name}: lamina's local volumes take only type=tmpfs,device=tmpfs"
                               "[,o=size=N] as mount options")


def tmpfs_size(options: dict) -> int | None:
    """The size of a tmpfs volume's mount (0: the kernel's default), or None when the
    options ask for a mount lamina does not make."""
    from lamina.units import ram_in_bytes

    if options.get("type") != "tmpfs" or options.get("device") != "tmpfs":
        return None
    size = 0
    for item in filter(None, options.get("o", "").split(",")):
        key, _, value = item.partition("=")
        if key != "size" or ram_in_bytes(value) is None:
            return None
        size = ram_in_bytes(value)
    return size


class VolumeStore:
    def __init__(self, root: str, db) -> None:
        self.dir = os.path.join(root, "volumes")
        self.db = db

    def mountpoint(self, name: str) -> str:
        return os.path.join(self.dir, name, "_data")

    def _volume(self, row) -> Volume:
        name, driver, labels, options, anonymous, created = row
        return Volume(name, driver, loads(labels), loads(options), bool(anonymous), created, self.mountpoint(name))

    # ------------------------------------------------------------------ volumes
    def create(self, name: str | None = None, *, labels: dict | None = None, options: dict | None = None,
               anonymous: bool = False) -> Volume:
        """A new volume, or the existing one of that name (as dockerd: create is
        idempotent, the first labels stay).  No name: an anonymous volume's 64 hex."""
        if not name:
            name, anonymous = os.urandom(32).hex(), True
        check_name(name)
        check_options(name, options or {})
        found = self.find(name)
        if found is not None:
            return found
        private_dir(self.dir)
        vol_dir = os.path.join(self.dir, name)
        os.makedirs(vol_dir, 0o700, exist_ok=True)
        try:
            os.mkdir(os.path.join(vol_dir, "_data"), 0o755)
        except FileExistsError:
            pass  # a crash between the directory and the row: taken over
        with transaction(self.db) as db:
            db.execute("INSERT OR IGNORE INTO volumes VALUES (?,?,?,?,?,?)",
                       (name, "local", dumps(dict(sorted((labels or {}).items()))),  # Go's maps: sorted keys
                        dumps(dict(sorted((options or {}).items()))), int(anonymous), time.time()))
        return self.get(name)

    def find(self, name: str) -> Volume | None:
        row = self.db.execute("SELECT name, driver, labels, options, anonymous, created FROM volumes "
                              "WHERE name=?", (name,)).fetchone()
        return self._volume(row) if row else None

    def get(self, name: str) -> Volume:
        found = self.find(name)
        if found is None:
            raise NoSuchVolume(name)
        return found

    def list(self) -> list[Volume]:
        rows = self.db.execute("SELECT name, driver, labels, options, anonymous, created FROM volumes").fetchall()
        return [self._volume(r) for r in rows]

    def users(self, name: str) -> list[str]:
        """The containers that mount the volume (docker's "in use": any container, running or not)."""
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT container_id FROM volume_mounts WHERE volume=? ORDER BY container_id", (name,))]

    def used_names(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT volume FROM volume_mounts")}

    def remove(self, name: str, *, force: bool = False) -> None:
        """Delete a volume and its data; refused while a container uses it (also with
        force, as dockerd: -f only makes a missing volume no error)."""
        if self.find(name) is None:
            if force:
                return
            raise NoSuchVolume(name)
        with transaction(self.db) as db:
            users = [r[0] for r in db.execute("SELECT DISTINCT container_id FROM volume_mounts WHERE volume=?",
                                              (name,))]
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")  # Go's %v of a slice
            db.execute("DELETE FROM volumes WHERE name=?", (name,))
        self.remove_dir(name)

    def remove_dir(self, name: str) -> None:
        from lamina.archive.rmtree import remove_path

        check_name(name)  # never a path outside the volumes directory, whatever a row says
        try:
            remove_path(os.path.join(self.dir, name))
        except FileNotFoundError:
            pass

    def size(self, name: str) -> int:
        """Bytes of file data under the volume (system df's SIZE), walked without following links."""
        total = 0
        stack = [self.mountpoint(name)]
        while stack:
            try:
                with os.scandir(stack.pop()) as it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        else:
                            total += e.stat(follow_symlinks=False).st_size
            except OSError:
                continue
        return total

    # ------------------------------------------------------------------ mounts
    def add_mounts(self, mounts) -> None:
        with transaction(self.db) as db:
            db.executemany("INSERT OR REPLACE INTO volume_mounts VALUES (?,?,?,?,?,?,?)",
                           [(m.container_id, m.destination, m.volume, m.mode, int(m.rw), int(m.copy),
                             int(m.anonymous)) for m in mounts])

    def mounts_of(self, container_id: str) -> list[VolumeMount]:
        rows = self.db.execute("SELECT container_id, destination, volume, mode, rw, copy, anonymous "
                               "FROM volume_mounts WHERE container_id=? ORDER BY rowid", (container_id,))
        return [VolumeMount(c, d, v, m, bool(rw), bool(cp), bool(a)) for c, d, v, m, rw, cp, a in rows]

    def drop_mounts(self, container_id: str) -> list[str]:
        """Forget a removed container's mounts; returns the anonymous volumes it had."""
        with transaction(self.db) as db:
            names = [r[0] for r in db.execute("SELECT volume FROM volume_mounts WHERE container_id=? "
                                              "AND anonymous=1", (container_id,))]
            db.execute("DELETE FROM volume_mounts WHERE container_id=?", (container_id,))
        return names

    def set_copied(self, container_id: str, destination: str) -> None:
        """A volume's content was copied up once: never again for this mount (as dockerd's CopyData)."""
        with transaction(self.db) as db:
            db.execute("UPDATE volume_mounts SET copy=0 WHERE container_id=? AND destination=?",
                       (container_id, destination))
