"""The image's user and group names beyond the process user: `--group-add`'s groups
(runtime/hostopts.py) and the owner names an export or `cp` writes (uname/gname).

Read from the image's own /etc/passwd and /etc/group by runtime/rootfs.py's reader
(pwd/grp would consult the host's NSS); kept apart from it because a plain `run`
needs neither.
"""

from __future__ import annotations

from lamina.errors import RuntimeFailure
from lamina.runtime.rootfs import MAX_ID, RANGE_ERROR, atoi, parse_db, read_db


def lookup_groups(rootfs: str, names) -> list[int]:
    """`--group-add` values as gids (libcontainer's GetAdditionalGroups): a group of the
    image's /etc/group by name or gid, else a number; anything else is refused."""
    groups = parse_db(read_db(rootfs, "/etc/group", "") or b"", group=True)
    out: list[int] = []
    for name in names:
        gid = next((g[1] for g in groups if name in (g[0], str(g[1]))), None)
        if gid is None:
            gid = atoi(name)
            if gid is None:
                raise RuntimeFailure(f"Unable to find group {name}: no matching entries in group file")
            if not 0 <= gid <= MAX_ID:
                raise RuntimeFailure(RANGE_ERROR)
        if gid not in out:
            out.append(gid)
    return out


def id_names(rootfs: str) -> tuple[dict[int, str], dict[int, str]]:
    """(uid -> user name, gid -> group name) from the image's own /etc/passwd and
    /etc/group, first entry winning as in Go's os/user; a file that cannot be read
    gives no names (docker's export then leaves uname/gname empty)."""
    out: list[dict[int, str]] = []
    for path, group in (("/etc/passwd", False), ("/etc/group", True)):
        try:
            data = read_db(rootfs, path, "")
        except RuntimeFailure:  # not a regular file, or too big
            data = None
        names: dict[int, str] = {}
        for entry in parse_db(data or b"", group=group):
            names.setdefault(entry[1], entry[0])
        out.append(names)
    return out[0], out[1]
