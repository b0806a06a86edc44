"""`lamina cp` against `docker cp` (the 20.10 CLI and the local dockerd), case by case.

Both sides start from the same busybox rootfs, imported into each, and a container
running the same script, which lays out files, directories, links inside the root
and per-case destination directories /t/<case>.  Every case runs in its own fresh
local directory on each side; the exit code, the message (container names and the
local directory made equal) and the resulting tree (local, or the container's
/t/<case>) must match.  Plus the confinement rule docker cp itself breaks in old
versions: a copy into the container through a symlink to a host directory stays in
the container.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import requires_root

pytestmark = requires_root

DOCKER = "/usr/bin/docker"  # the 20.10 CLI; /usr/local/bin/docker is a newer client
LAMINA = [sys.executable, "-m", "lamina"]

SETUP = ("mkdir -p /d/sub /e; echo hi > /d/f; echo s > /d/sub/g; ln -s /d /ld; ln -s f /d/lf; ln -s /etc /d/le; "
         "ln -s /ld /ld2; ln -s nothere /dang; ln -s ../.. /d/sub/up; chmod 640 /d/f; chown 1000:50 /d/sub/g; "
         "ln /d/f /d/hard; mkfifo /d/fifo; "
         "for c in $(seq 40); do mkdir -p /t/$c/exdir; echo e > /t/$c/exfile; ln -s exdir /t/$c/ldir; "
         "ln -s nothing /t/$c/lnone; done; touch /ready; exec sleep 3600")

# (case, argv after `cp`, local files to make first).  {c}: the container, {t}: its /t/<n>.
FROM = [
    ("file-new", ["{c}:/d/f", "new"]),
    ("file-into-dir", ["{c}:/d/f", "exdir"]),
    ("file-over-file", ["{c}:/d/f", "exfile"]),
    ("file-missing-dir-asserted", ["{c}:/d/f", "nodir/"]),
    ("file-parent-missing", ["{c}:/d/f", "nodir/x"]),
    ("file-trailing-slash", ["{c}:/d/f/", "x"]),
    ("dir-new", ["{c}:/d", "new"]),
    ("dir-into-dir", ["{c}:/d", "exdir"]),
    ("dir-over-file", ["{c}:/d", "exfile"]),
    ("dir-contents-new", ["{c}:/d/.", "new"]),
    ("dir-contents-into-dir", ["{c}:/d/.", "exdir"]),
    ("dir-trailing-slash", ["{c}:/d/", "new"]),
    ("link-itself", ["{c}:/ld", "new"]),
    ("link-trailing-slash", ["{c}:/ld/", "exdir"]),
    ("link-follow", ["-L", "{c}:/ld2", "new"]),
    ("link-follow-file", ["-L", "{c}:/d/lf", "exdir"]),
    ("link-chain-inside", ["{c}:/ld2/sub/up/d/sub/g", "new"]),
    ("dangling", ["{c}:/dang", "new"]),
    ("into-local-link-to-dir", ["{c}:/d/f", "ldir"]),
    ("into-local-dangling-link", ["{c}:/d/f", "lnone"]),
    ("kind-clash-dir", ["{c}:/d/.", "clash"]),  # a local directory where the container has a file
    ("kind-clash-file", ["{c}:/.", "clash"]),  # a local file where the container has a directory
    ("missing", ["{c}:/nope", "new"]),
    ("missing-container", ["h1cp-nosuch:/d", "new"]),
    ("device", ["{c}:/d/f", "/dev/null"]),
    ("no-container", ["a", "b"]),
    ("two-containers", ["{c}:/a", "{c}:/b"]),
]
TO = [
    ("file-into-dir", ["src/f", "{c}:{t}/exdir"]),
    ("file-new-name", ["src/f", "{c}:{t}/new"]),
    ("file-over-file", ["src/f", "{c}:{t}/exfile"]),
    ("file-asserted-dir", ["src/f", "{c}:{t}/new/"]),
    ("file-parent-missing", ["src/f", "{c}:{t}/no/x"]),
    ("dir-new", ["src", "{c}:{t}/new"]),
    ("dir-into-dir", ["src", "{c}:{t}/exdir"]),
    ("dir-over-file", ["src", "{c}:{t}/exfile"]),
    ("dir-contents", ["src/.", "{c}:{t}/exdir"]),
    ("dir-contents-new", ["src/.", "{c}:{t}/new"]),
    ("through-link-to-dir", ["src/f", "{c}:{t}/ldir"]),
    ("through-dangling-link", ["src/f", "{c}:{t}/lnone"]),
    ("local-link", ["src/lf", "{c}:{t}/exdir"]),
    ("local-link-follow", ["-L", "src/lf", "{c}:{t}/exdir"]),
    ("local-missing", ["src/nope", "{c}:{t}"]),
    ("kind-clash-dir", ["clash/.", "{c}:{t}"]),  # the container has a file exfile, a directory exdir
    ("kind-clash-file", ["clash2/.", "{c}:{t}"]),
    ("missing-container", ["src/f", "h1cp-nosuch:/tmp"]),
]


def docker_ok() -> bool:
    return Path(DOCKER).exists() and subprocess.run([DOCKER, "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def sides(tmp_path_factory, busybox_tar):
    """{"docker": (argv, container), "lamina": (argv, container)}, both running SETUP."""
    if not docker_ok():
        pytest.skip("SKIPPED LOUDLY: no dockerd to compare `cp` with")
    tag = f"h1cp-{uuid.uuid4().hex[:8]}"
    store = tmp_path_factory.mktemp("cp") / "store"
    lamina = [*LAMINA, "--root", str(store)]
    made = {"docker": ([DOCKER], tag), "lamina": (lamina, tag)}
    for argv, name in made.values():
        subprocess.run([*argv, "import", str(busybox_tar), f"{tag}:1"], check=True, capture_output=True)
    try:
        for argv, name in made.values():
            subprocess.run([*argv, "run", "-d", "--name", name, f"{tag}:1", "sh", "-c", SETUP], check=True,
                           capture_output=True)
        for argv, name in made.values():
            _wait_ready([*argv, "exec", name, "test", "-e", "/ready"])
        yield made
    finally:
        for argv, name in made.values():
            subprocess.run([*argv, "rm", "-f", name], capture_output=True)
        subprocess.run([DOCKER, "rmi", f"{tag}:1"], capture_output=True)


def _wait_ready(argv: list[str], timeout: float = 120) -> None:
    """Until `argv` (an exec of `test -e /ready`) succeeds: the container's SETUP is done."""
    deadline = time.monotonic() + timeout
    while subprocess.run(argv, capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, f"not ready: {argv}"
        time.sleep(0.1)


def local_tree(root: Path) -> list:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath, name)
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out.append((rel, "link", os.readlink(p)))
            elif p.is_dir():
                out.append((rel, "dir", oct(st.st_mode & 0o7777), st.st_uid))
            else:
                out.append((rel, oct(st.st_mode), st.st_size, p.read_bytes() if p.is_file() else b"", st.st_uid,
                            st.st_nlink))
    return sorted(out)


def container_tree(argv, name, path) -> list[str]:
    listing = subprocess.run([*argv, "exec", name, "sh", "-c", f"cd {path} && find . -exec stat -c "
                              "'%n|%F|%a|%u:%g|%s|%h|%N' {} + && find . -type f -exec md5sum {} +"],
                             capture_output=True, text=True).stdout
    assert listing.startswith(".|directory|"), (name, path, listing)
    return sorted(listing.splitlines())


def prepare_local(where: Path) -> None:
    where.mkdir()
    (where / "exdir").mkdir()
    (where / "exfile").write_text("e\n")
    (where / "ldir").symlink_to("exdir")
    (where / "lnone").symlink_to("nothing")
    src = where / "src"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_text("local\n")
    (src / "sub" / "g").write_text("g\n")
    os.chown(src / "sub" / "g", 1234, 5678)
    (src / "lf").symlink_to("f")
    (where / "clash" / "f" / "in").mkdir(parents=True)
    (where / "clash" / "exfile").mkdir()
    (where / "clash" / "d").write_text("not a dir\n")
    (where / "clash2").mkdir()
    (where / "clash2" / "exdir").write_text("not a dir\n")
    os.link(src / "f", src / "hard")


def normalize(text: str, name: str, where: Path) -> str:
    text = text.replace(str(where), "{tmp}").replace(name, "{c}")
    return re.sub(r"/var/lib/docker/\S+?/merged", "", text)  # dockerd names its own host path


@pytest.mark.parametrize("case,args", FROM, ids=[c for c, _ in FROM])
def test_from_container_as_docker(sides, tmp_path, case, args):
    results = {}
    for side, (argv, name) in sides.items():
        where = tmp_path / side
        prepare_local(where)
        cmd = [*argv, "cp", *(a.format(c=name) for a in args)]
        r = subprocess.run(cmd, cwd=where, capture_output=True, text=True)
        results[side] = (r.returncode, normalize(r.stderr, name, where), local_tree(where))
    assert results["lamina"] == results["docker"]


@pytest.mark.parametrize("case,args", TO, ids=[c for c, _ in TO])
def test_to_container_as_docker(sides, tmp_path, case, args):
    results = {}
    n = [c for c, _ in TO].index(case) + 1
    for side, (argv, name) in sides.items():
        where = tmp_path / side
        prepare_local(where)
        cmd = [*argv, "cp", *(a.format(c=name, t=f"/t/{n}") for a in args)]
        r = subprocess.run(cmd, cwd=where, capture_output=True, text=True)
        results[side] = (r.returncode, normalize(r.stderr, name, where), container_tree(argv, name, f"/t/{n}"))
    assert results["lamina"] == results["docker"]


def test_tar_streams_as_docker(sides, tmp_path):
    """`-` as the destination: the tar itself (names, types, owners, modes, links,
    contents); `-` as the source: a tar from stdin into a directory, else refused."""
    for path in ("/d", "/d/.", "/d/f", "/ld", "/ld/"):
        seen = {}
        for side, (argv, name) in sides.items():
            data = subprocess.run([*argv, "cp", f"{name}:{path}", "-"], capture_output=True, check=True).stdout
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                seen[side] = sorted((m.name, m.type, m.mode, m.uid, m.gid, m.uname, m.linkname, m.size,
                                     tf.extractfile(m).read() if m.isreg() else b"") for m in tf)
        assert seen["lamina"] == seen["docker"], path
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("in/.wh.streamed")  # docker cp's Untar: not a whiteout
        info.size, info.uid = 3, 42
        tf.addfile(info, io.BytesIO(b"abc"))
    results = {}
    for side, (argv, name) in sides.items():
        runs = [subprocess.run([*argv, "cp", "-", f"{name}:{dst}"], input=payload.getvalue(), capture_output=True)
                for dst in ("/t/39", "/t/39/exfile", "/t/39/nope")]
        results[side] = ([(r.returncode, r.stderr.decode().replace(name, "{c}")) for r in runs],
                         container_tree(argv, name, "/t/39"))
    assert results["lamina"] == results["docker"]


# ------------------------------------------------------------------ confinement (lamina only)


def test_copy_into_a_link_to_a_host_dir_stays_in_the_container(sides, tmp_path):
    argv, name = sides["lamina"]
    host = tmp_path / "host-dir"
    host.mkdir()
    subprocess.run([*argv, "exec", name, "sh", "-c", f"ln -s {host} /t/40/out; mkdir -p {host}; "
                    f"ln -s {host}/sub /t/40/sub"], check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload").write_text("pwned\n")
    for dst in ("/t/40/out", "/t/40/out/", "/t/40/sub", "/t/40/out/x"):
        subprocess.run([*argv, "cp", str(src / "payload"), f"{name}:{dst}"], capture_output=True)
        subprocess.run([*argv, "cp", f"{src}/.", f"{name}:{dst}"], capture_output=True)
    assert list(host.iterdir()) == []  # nothing on the host
    found = subprocess.run([*argv, "exec", name, "find", "/", "-name", "payload", "-xdev"], capture_output=True,
                           text=True).stdout.split()
    assert f"{host}/payload" in found  # written where the link leads inside the container's root


def test_copy_out_through_a_link_to_a_host_path_reads_the_container(sides, tmp_path):
    argv, name = sides["lamina"]
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    subprocess.run([*argv, "exec", name, "ln", "-s", str(secret), "/e/leak"], check=True)
    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([*argv, "cp", "-L", f"{name}:/e/leak", str(out / "got")], capture_output=True, text=True)
    assert r.returncode == 1 and f"No such container:path: {name}:{secret}" in r.stderr  # not in the container
    r = subprocess.run([*argv, "cp", f"{name}:/e/leak", "-"], capture_output=True, check=True)
    assert b"host secret" not in r.stdout


# ------------------------------------------------------------------ docker's CLIs on lamina's Engine API

API_CASES = [c for c in FROM if c[0] in ("file-new", "file-into-dir", "dir-new", "dir-contents-into-dir",
                                          "link-trailing-slash", "link-follow", "missing", "kind-clash-dir")]
API_TO = [c for c in TO if c[0] in ("file-new-name", "dir-new", "dir-contents", "through-link-to-dir",
                                    "through-dangling-link", "file-parent-missing", "kind-clash-file")]


@pytest.fixture(scope="module")
def api(tmp_path_factory, busybox_tar):
    """lamina's Engine API on its own store, with SETUP running in `cpapi`."""
    from api_fixtures import Service, lamina

    root = tmp_path_factory.mktemp("cp-api") / "root"
    assert lamina(root, "import", str(busybox_tar), "cpapi:1").returncode == 0
    assert lamina(root, "run", "-d", "--name", "cpapi", "cpapi:1", "sh", "-c", SETUP).returncode == 0
    _wait_ready([*LAMINA, "--root", str(root), "exec", "cpapi", "test", "-e", "/ready"])
    svc = Service(root)
    try:
        yield svc, root
    finally:
        lamina(root, "rm", "-f", "cpapi")
        svc.stop()


@pytest.mark.parametrize("cli", [p for p in (DOCKER, "/usr/local/bin/docker") if os.path.exists(p)])
def test_docker_clis_through_the_engine_api_copy_as_lamina_cp(api, cli, tmp_path):
    """HEAD/GET/PUT …/archive as docker's CLIs use them: what they copy is what `lamina cp`
    copies; the 20.10 CLI (whose texts `lamina cp` keeps) prints the same errors."""
    svc, root = api
    env = {**os.environ, "DOCKER_HOST": svc.host, "DOCKER_CONFIG": "/nonexistent"}
    for n, (case, args) in enumerate(API_CASES + API_TO):
        results = {}
        for side, argv in (("docker", [cli]), ("lamina", [*LAMINA, "--root", str(root)])):
            where = tmp_path / f"{n}-{side}"
            prepare_local(where)
            t = f"/t/{n + 1 if side == 'docker' else n + 21}"  # a fresh destination for each side
            cmd = [*argv, "cp", *(a.format(c="cpapi", t=t) for a in args)]
            r = subprocess.run(cmd, cwd=where, capture_output=True, text=True, env=env)
            tree = (local_tree(where) if (case, args) in API_CASES else
                    container_tree([*LAMINA, "--root", str(root)], "cpapi", t))
            message = normalize(r.stderr, "cpapi", where).replace(t, "{t}") if cli == DOCKER else ""
            results[side] = (r.returncode, message, tree)
        assert results["lamina"] == results["docker"], case


def test_archive_mode_owns_by_the_container_user_as_docker(sides, tmp_path):
    """-a: the copied files belong to the container's user (`daemon`: uid 1 gid 1 in the
    image and on this host, where dockerd 20.10 looks it up); without -a the tar's owners stay."""
    (tmp_path / "f").write_text("x\n")
    os.chown(tmp_path / "f", 1234, 5678)
    seen = {}
    for side, (argv, tag) in sides.items():
        name = f"h1cp-user-{side}"
        subprocess.run([*argv, "create", "--user", "daemon", "--name", name, f"{tag}:1", "true"], check=True,
                       capture_output=True)
        try:
            for flags, dst in (([], "/tmp/plain"), (["-a"], "/tmp/archived")):
                subprocess.run([*argv, "cp", *flags, str(tmp_path / "f"), f"{name}:{dst}"], check=True)
            data = subprocess.run([*argv, "cp", f"{name}:/tmp", "-"], capture_output=True, check=True).stdout
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                seen[side] = sorted((m.name, m.uid, m.gid) for m in tf if m.isreg())
        finally:
            subprocess.run([*argv, "rm", "-f", name], capture_output=True)
    assert seen["lamina"] == seen["docker"] == [("tmp/archived", 1, 1), ("tmp/plain", 1234, 5678)]


def test_read_only_rootfs_refuses_a_copy_in(sides, tmp_path):
    argv, name = sides["lamina"]
    tag = sides["lamina"][1]
    subprocess.run([*argv, "create", "--read-only", "--name", "h1cp-ro", f"{tag}:1", "true"], check=True,
                   capture_output=True)
    try:
        (tmp_path / "f").write_text("x\n")
        r = subprocess.run([*argv, "cp", str(tmp_path / "f"), "h1cp-ro:/tmp"], capture_output=True, text=True)
        assert (r.returncode, r.stderr) == (1, "Error response from daemon: container rootfs is marked read-only\n")
        assert subprocess.run([*argv, "cp", "h1cp-ro:/etc/passwd", "-"], capture_output=True).returncode == 0
    finally:
        subprocess.run([*argv, "rm", "-f", "h1cp-ro"], capture_output=True)


def test_stopped_container_both_ways_leaves_no_mount(sides, tmp_path):
    """A created (never started) container: its rootfs is mounted for the copy only."""
    argv, _ = sides["lamina"]
    store = argv[argv.index("--root") + 1]
    tag = sides["lamina"][1]
    cid = subprocess.run([*argv, "create", "--name", "h1cp-still", f"{tag}:1", "true"], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        (tmp_path / "in.txt").write_text("into a stopped one\n")
        assert subprocess.run([*argv, "cp", str(tmp_path / "in.txt"), "h1cp-still:/etc/"]).returncode == 0
        out = subprocess.run([*argv, "cp", "h1cp-still:/etc/in.txt", "-"], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(out)) as tf:
            assert tf.extractfile("in.txt").read() == b"into a stopped one\n"
        rootfs = os.path.join(store, "containers", cid, "rootfs")
        assert os.path.isdir(os.path.dirname(rootfs)) and not os.path.ismount(rootfs)
    finally:
        subprocess.run([*argv, "rm", "-f", "h1cp-still"], capture_output=True)


def test_stat_documents_as_dockerd(sides):
    """HEAD …/archive's X-Docker-Container-Path-Stat: dockerd's on its socket, lamina's
    from the engine (the same function its API serves); mtimes differ by creation."""
    import base64
    import json

    from api_fixtures import UnixHTTPConnection
    from lamina.engine.archive import stat_path
    from lamina.system import System

    argv, name = sides["lamina"]
    system = System(argv[argv.index("--root") + 1])
    try:
        for path in ("/d", "/d/", "/d/.", "/ld", "/ld2", "/ld/", "/d/lf", "/dang", "/", "/d/sub/up", "/d/fifo",
                     "/d/../d/f", "d/sub/g"):
            conn = UnixHTTPConnection("/var/run/docker.sock")
            conn.request("HEAD", f"/containers/{sides['docker'][1]}/archive?path={path}")
            response = conn.getresponse()
            theirs = json.loads(base64.b64decode(response.getheader("X-Docker-Container-Path-Stat")))
            conn.close()
            ours = stat_path(system, name, path)
            assert ours["mtime"].endswith("Z") and "T" in ours["mtime"]
            for doc in (theirs, ours):
                del doc["mtime"]
            assert ours == theirs, path
    finally:
        system.close()
