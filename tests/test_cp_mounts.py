"""`lamina cp` through a container's volumes and bind mounts, against `docker cp` (the
20.10 CLI and the local dockerd), which mounts them for the call: a path at or below
a mount point is read and written in the mount's source, confined as in the root
(links in a volume lead into the container's root, `..` of a mount point is its
parent there); a read-only mount refuses a copy in, a read-only rootfs does not
refuse one into a volume.  A running container, a stopped one and a --read-only one.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from conftest import requires_root
from test_cli_cp import DOCKER, LAMINA, _wait_ready, container_tree, docker_ok, local_tree, normalize, \
    prepare_local

pytestmark = requires_root

SETUP = ("mkdir -p /vol/sub; echo v > /vol/f; echo s > /vol/sub/g; chmod 640 /vol/f; ln -s / /vol/up; "
         "ln -s ../etc /vol/rel; ln -s /vol/sub /vol/abs; "
         "for c in $(seq 12); do mkdir -p /vol/t$c /c$c; done; touch /ready; exec sleep 3600")

FROM = [
    ("vol-file", ["{c}:/vol/f", "new"]),
    ("vol-dir", ["{c}:/vol", "new"]),
    ("vol-contents", ["{c}:/vol/.", "new"]),
    ("vol-sub-into-dir", ["{c}:/vol/sub", "exdir"]),
    ("vol-link-to-root", ["{c}:/vol/up/etc/passwd", "new"]),
    ("vol-dotdot", ["{c}:/vol/../etc/group", "new"]),
    ("vol-relative-link", ["{c}:/vol/rel/passwd", "new"]),
    ("vol-link-follow", ["-L", "{c}:/vol/abs", "new"]),
    ("vol-missing", ["{c}:/vol/nope", "new"]),
    ("bind-file", ["{c}:/bnd/f", "new"]),
    ("bind-dir", ["{c}:/bnd", "new"]),
    ("ro-bind-file", ["{c}:/ro/f", "new"]),
]
# (case, argv, the container's directory whose tree is compared)
TO = [
    ("into-vol-dir", ["src/f", "{c}:/vol/t{n}"], "/vol/t{n}"),
    ("vol-new-name", ["src", "{c}:/vol/t{n}/new"], "/vol/t{n}"),
    ("vol-contents", ["src/.", "{c}:/vol/t{n}"], "/vol/t{n}"),
    ("into-the-volume-itself", ["src/f", "{c}:/vol"], "/vol"),
    ("into-bind", ["src/f", "{c}:/bnd/t{n}"], "/bnd/t{n}"),
    ("into-ro-bind", ["src/f", "{c}:/ro"], "/ro"),
    ("through-link-to-root", ["src/f", "{c}:/vol/up/c{n}"], "/c{n}"),
    ("dotdot-of-the-mount-point", ["src/f", "{c}:/vol/../c{n}"], "/c{n}"),
]


@pytest.fixture(scope="module")
def sides(tmp_path_factory, busybox_tar):
    """{"docker": (argv, tag), "lamina": (argv, tag)}: per side a running container `tag`
    with a named volume at /vol, a bind at /bnd and a read-only bind at /ro; a stopped
    one `tag-done` whose volume holds /w/f; a --read-only one `tag-ro` with a volume at /w."""
    if not docker_ok():
        pytest.skip("SKIPPED LOUDLY: no dockerd to compare `cp` with")
    tag = f"h1cpm-{uuid.uuid4().hex[:8]}"
    base = tmp_path_factory.mktemp("cpmounts")
    made = {"docker": ([DOCKER], tag), "lamina": ([*LAMINA, "--root", str(base / "store")], tag)}
    for argv, _ in made.values():
        subprocess.run([*argv, "import", str(busybox_tar), f"{tag}:1"], check=True, capture_output=True)
    try:
        for side, (argv, name) in made.items():
            bnd, ro = base / side / "bnd", base / side / "ro"
            (bnd / "d").mkdir(parents=True)
            (bnd / "f").write_text("b\n")
            (bnd / "d" / "x").write_text("x\n")
            for c in range(1, 13):
                (bnd / f"t{c}").mkdir()
            ro.mkdir()
            (ro / "f").write_text("r\n")
            subprocess.run([*argv, "run", "-d", "--name", name, "-v", f"{tag}-vol:/vol", "-v", f"{bnd}:/bnd",
                            "-v", f"{ro}:/ro:ro", f"{tag}:1", "sh", "-c", SETUP], check=True, capture_output=True)
            subprocess.run([*argv, "run", "--name", f"{name}-done", "-v", f"{tag}-done:/w", f"{tag}:1", "sh", "-c",
                            "mkdir /w/in; echo done > /w/f"], check=True, capture_output=True)
            subprocess.run([*argv, "run", "-d", "--read-only", "--name", f"{name}-ro", "-v", f"{tag}-rovol:/w",
                            f"{tag}:1", "sleep", "3600"], check=True, capture_output=True)
        for argv, name in made.values():
            _wait_ready([*argv, "exec", name, "test", "-e", "/ready"])
        yield made
    finally:
        for argv, name in made.values():
            subprocess.run([*argv, "rm", "-f", name, f"{name}-done", f"{name}-ro"], capture_output=True)
            subprocess.run([*argv, "volume", "rm", f"{tag}-vol", f"{tag}-done", f"{tag}-rovol"], capture_output=True)
        subprocess.run([DOCKER, "rmi", f"{tag}:1"], capture_output=True)


@pytest.mark.parametrize("case,args", FROM, ids=[c for c, _ in FROM])
def test_from_a_mount_as_docker(sides, tmp_path, case, args):
    results = {}
    for side, (argv, name) in sides.items():
        where = tmp_path / side
        prepare_local(where)
        r = subprocess.run([*argv, "cp", *(a.format(c=name) for a in args)], cwd=where, capture_output=True,
                           text=True)
        results[side] = (r.returncode, normalize(r.stderr, name, where), local_tree(where))
    assert results["lamina"] == results["docker"]


@pytest.mark.parametrize("case,args,tree", TO, ids=[c for c, _, _ in TO])
def test_to_a_mount_as_docker(sides, tmp_path, case, args, tree):
    n = [c for c, _, _ in TO].index(case) + 1
    results = {}
    for side, (argv, name) in sides.items():
        where = tmp_path / side
        prepare_local(where)
        r = subprocess.run([*argv, "cp", *(a.format(c=name, n=n) for a in args)], cwd=where, capture_output=True,
                           text=True)
        results[side] = (r.returncode, normalize(r.stderr, name, where),
                         container_tree(argv, name, tree.format(n=n)))
    assert results["lamina"] == results["docker"]


def test_a_stopped_containers_volume_both_ways_as_docker(sides, tmp_path):
    results = {}
    for side, (argv, name) in sides.items():
        where = tmp_path / side
        prepare_local(where)
        got = [subprocess.run([*argv, "cp", f"{name}-done:/w", "out"], cwd=where, capture_output=True, text=True),
               subprocess.run([*argv, "cp", "src", f"{name}-done:/w/in"], cwd=where, capture_output=True, text=True),
               subprocess.run([*argv, "cp", f"{name}-done:/w/in", "back"], cwd=where, capture_output=True,
                              text=True)]
        results[side] = ([(r.returncode, normalize(r.stderr, name, where)) for r in got], local_tree(where))
    assert results["lamina"] == results["docker"]
    assert results["lamina"][0] == [(0, "")] * 3


def test_a_read_only_rootfs_takes_a_copy_into_its_volume_only(sides, tmp_path):
    results = {}
    for side, (argv, name) in sides.items():
        where = tmp_path / side
        prepare_local(where)
        got = [subprocess.run([*argv, "cp", "src/f", f"{name}-ro:{dst}"], cwd=where, capture_output=True, text=True)
               for dst in ("/w", "/tmp", "/w/../tmp")]
        results[side] = ([(r.returncode, normalize(r.stderr, name, where)) for r in got],
                         container_tree(argv, f"{name}-ro", "/w"))
    assert results["lamina"] == results["docker"]
    assert [code for code, _ in results["lamina"][0]] == [0, 1, 1]


def test_links_in_a_volume_never_reach_the_host(sides, tmp_path):
    """A volume is the container's to fill: its absolute links and `..` resolve in the
    container's root, a copy in through them lands there, never on the host."""
    argv, name = sides["lamina"]
    host = tmp_path / "host-dir"
    host.mkdir()
    subprocess.run([*argv, "exec", name, "sh", "-c", f"ln -s {host} /vol/t12/out; ln -s ../../../../.. /vol/t12/climb"],
                   check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload").write_text("pwned\n")
    for dst in ("/vol/t12/out", "/vol/t12/out/", "/vol/t12/climb" + str(host), "/vol/t12/climb/c12"):
        subprocess.run([*argv, "cp", str(src / "payload"), f"{name}:{dst}"], capture_output=True)
    assert list(host.iterdir()) == []
    r = subprocess.run([*argv, "cp", f"{name}:/vol/t12/climb/etc/passwd", "-"], capture_output=True, check=True)
    assert b"app:x:1000" in r.stdout  # the container's own passwd (conftest's busybox rootfs)
    found = subprocess.run([*argv, "exec", name, "find", "/", "-name", "payload", "-xdev"], capture_output=True,
                           text=True).stdout.split()
    assert "/c12/payload" in found


# ------------------------------------------------------------- mounts below a copied directory, file binds, tmpfs
# dockerd mounts a container's volumes and binds for the call, so a copied directory's walk goes on in the ones
# below it, a file bind is its source, and an extraction lands in them (a read-only one refuses the entry, a file
# bind cannot be replaced: EBUSY).  A --tmpfs mount exists only in the container's namespace: dockerd 20.10's
# walk sees its empty mount point.

NESTED = ("mkdir -p /data/sub; echo a > /data/a; echo volf > /data/vol/f; mkdir /data/vol/in; "
          "ln -s / /data/vol/up; ln -s ../../etc /data/vol/rel; echo tm > /t/f; touch /ready; exec sleep 3600")

BELOW = [
    ("dir-with-mounts-below", ["{c}:/data", "new"]),
    ("its-contents", ["{c}:/data/.", "new"]),
    ("file-bind", ["{c}:/etc/x", "new"]),
    ("file-bind-below", ["{c}:/data/fb", "new"]),
    ("file-bind-through-a-volume", ["{c}:/data/vol/../fb", "new"]),
    ("the-root-etc", ["{c}:/etc/.", "exdir"]),
    ("tmpfs-not-followed", ["{c}:/t", "new"]),
    ("tmpfs-file", ["{c}:/t/f", "new"]),
]


@pytest.fixture(scope="module")
def nested(tmp_path_factory, busybox_tar):
    """{"docker": (argv, name, host dir), "lamina": ...}: per side a running container
    with a volume at /data/vol, a read-only bind at /data/bd, a bind at /data/wb, a file
    bound at /etc/x and /data/fb, a tmpfs at /t."""
    if not docker_ok():
        pytest.skip("SKIPPED LOUDLY: no dockerd to compare `cp` with")
    tag = f"h1cpn-{uuid.uuid4().hex[:8]}"
    base = tmp_path_factory.mktemp("cpnested")
    made = {"docker": ([DOCKER], tag, base / "docker"),
            "lamina": ([*LAMINA, "--root", str(base / "store")], tag, base / "lamina")}
    for argv, _, _ in made.values():
        subprocess.run([*argv, "import", str(busybox_tar), f"{tag}:1"], check=True, capture_output=True)
    try:
        for argv, name, host in made.values():
            (host / "bd").mkdir(parents=True)
            (host / "bd" / "x").write_text("ro\n")
            (host / "wb").mkdir()
            (host / "hf").write_text("hostfile\n")
            subprocess.run([*argv, "run", "-d", "--name", name, "-v", f"{tag}-nvol:/data/vol",
                            "-v", f"{host / 'bd'}:/data/bd:ro", "-v", f"{host / 'wb'}:/data/wb",
                            "-v", f"{host / 'hf'}:/etc/x", "-v", f"{host / 'hf'}:/data/fb", "--tmpfs", "/t",
                            f"{tag}:1", "sh", "-c", NESTED], check=True, capture_output=True)
        for argv, name, _ in made.values():
            _wait_ready([*argv, "exec", name, "test", "-e", "/ready"])
        yield made
    finally:
        for argv, name, _ in made.values():
            subprocess.run([*argv, "rm", "-f", name], capture_output=True)
            subprocess.run([*argv, "volume", "rm", f"{tag}-nvol"], capture_output=True)
        subprocess.run([DOCKER, "rmi", f"{tag}:1"], capture_output=True)


@pytest.mark.parametrize("case,args", BELOW, ids=[c for c, _ in BELOW])
def test_from_mounts_below_and_file_binds_as_docker(nested, tmp_path, case, args):
    results = {}
    for side, (argv, name, _) in nested.items():
        where = tmp_path / side
        prepare_local(where)
        r = subprocess.run([*argv, "cp", *(a.format(c=name) for a in args)], cwd=where, capture_output=True,
                           text=True)
        tree = local_tree(where)
        if case == "the-root-etc":  # dockerd's own binds (hosts, resolv.conf, ...) are not lamina's files
            tree = [e for e in tree if not e[0].startswith("exdir/") or e[0] in ("exdir/x", "exdir/passwd")]
        results[side] = (r.returncode, normalize(r.stderr, name, where), tree)
    assert results["lamina"] == results["docker"]
    if case == "dir-with-mounts-below":  # what the mounts hold, not their mount points
        got = {e[0]: e for e in results["lamina"][2]}
        assert got["new/vol/f"][3] == b"volf\n" and got["new/fb"][3] == b"hostfile\n"
        assert got["new/bd/x"][3] == b"ro\n" and got["new/vol/up"] == ("new/vol/up", "link", "/")


def test_to_mounts_below_a_directory_as_docker(nested, tmp_path):
    """An extraction into /data lands in its volume and bind; one that reaches the
    read-only bind, or replaces the file bind, fails with dockerd's words and leaves
    their sources as they were."""
    results = {}
    for side, (argv, name, host) in nested.items():
        where = tmp_path / side
        prepare_local(where)
        (where / "up" / "vol").mkdir(parents=True)
        (where / "up" / "wb").mkdir()
        (where / "up" / "vol" / "n1").write_text("n1\n")
        (where / "up" / "wb" / "n2").write_text("n2\n")
        (where / "up" / "top").write_text("top\n")
        (where / "ro" / "bd").mkdir(parents=True)
        (where / "ro" / "bd" / "n3").write_text("n3\n")
        got = [subprocess.run([*argv, "cp", *args], cwd=where, capture_output=True, text=True)
               for args in (["up/.", f"{name}:/data"], ["ro/.", f"{name}:/data"], ["src/f", f"{name}:/etc/x"],
                            ["src/f", f"{name}:/data/fb"], ["ro/bd/n3", f"{name}:/data/vol/up/data/bd/n3"])]
        results[side] = ([(r.returncode, normalize(r.stderr, name, where)) for r in got],
                         container_tree(argv, name, "/data/vol"), container_tree(argv, name, "/data/wb"),
                         sorted(p.name for p in (host / "wb").iterdir()), sorted(p.name for p in (host / "bd").iterdir()),
                         (host / "hf").read_text())
    assert results["lamina"] == results["docker"]
    codes, _, _, wb, bd, hf = results["lamina"]
    assert [c for c, _ in codes] == [0, 1, 1, 1, 1] and wb == ["n2"] and bd == ["x"] and hf == "hostfile\n"


def test_a_walk_climbs_back_out_of_deep_mounts(tmp_path):
    """layertar's walk reopens a shallow directory through `..` of its child once it is
    deeper than its open-fd budget: never through a mount's directory, whose `..` is
    the host's.  Mounts at depth 2 and 70, each with a tree deeper than that budget."""
    import io
    import os
    import tarfile

    from lamina.archive.layertar import write_entry

    def deep(top, n):
        p = top
        for i in range(n):
            p = p / f"d{i}"
        p.mkdir(parents=True)
        (p / "leaf").write_text("x")
        return p

    root = tmp_path / "root"
    outer = deep(root, 70)
    (root / "d0" / "m1").mkdir()
    (outer / "m2").mkdir()
    (root / "after").write_text("a")
    vol1, vol2 = deep(tmp_path / "vol1", 70).parents[69], deep(tmp_path / "vol2", 70).parents[69]
    fds = [os.open(vol1, os.O_RDONLY | os.O_DIRECTORY), os.open(vol2, os.O_RDONLY | os.O_DIRECTORY)]
    rel2 = str((outer / "m2").relative_to(root))
    try:
        out = io.BytesIO()
        dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            write_entry(dfd, "root", "root", out, mounts={"d0/m1": fds[0], rel2: fds[1]})
        finally:
            os.close(dfd)
    finally:
        for fd in fds:
            os.close(fd)
    names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
    leaf = "/".join(f"d{i}" for i in range(70)) + "/leaf"
    assert f"root/d0/m1/{leaf}" in names and f"root/{rel2}/{leaf}" in names and f"root/{leaf}" in names
    assert "root/after" in names  # the walk climbed back out of both
    assert len(names) == len(set(names))
