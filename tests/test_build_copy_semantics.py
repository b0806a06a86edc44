"""COPY/ADD, WORKDIR and RUN-environment semantics compared with Docker (BuildKit).

Each case is a Dockerfile plus a small context built FROM the busybox base of
conftest (imported into both tools from the same tar).  Unlike
test_build_docker (which exports a container, so it must skip what a container
adds), the filesystem here is the image's own: `save`, the layers applied in
order (whiteouts honoured).  Compared: the config fields users see, the layer
count, and the delta against the base as paths with type, mode, owner, link
target, content (small text files verbatim, others by digest) and hard-link
identity (the set of names sharing an inode).

Docker's results are recorded in tests/data/build/docker_copy_semantics.json,
so `test_recorded` runs without docker; `test_against_docker` rebuilds with
Docker when a daemon answers (LAMINA_RECORD_BUILD=1 rewrites the recording).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import requires_root
from test_build_docker import Docker, _docker
from test_build_exec import lamina

pytestmark = requires_root
DATA = Path(__file__).parent / "data" / "build" / "docker_copy_semantics.json"
CONFIG_KEYS = ("Cmd", "Entrypoint", "WorkingDir", "User")
PREFIX = "lamina-copysem"

_FILE = {"file.txt": (0o644, "file\n")}

# name -> (Dockerfile after `FROM $BASE` (a body starting "FROM " replaces it), context files
# {path: (mode, text) | ("link", target) | ("hard", other) | ("dir", mode)})
CASES = {
    # onto an existing symlink: the write goes through the link, resolved inside the root
    "symlink-dest": (
        "RUN mkdir /real && ln -s /real /todir && ln -s /real/f /tofile && ln -s /nowhere/made /dangling"
        " && ln -s ../../../../escaped /up && ln -s real /rel && ln -s real/g /addlink\n"
        "COPY file.txt /todir/\nCOPY file.txt /tofile\nCOPY file.txt /dangling\nCOPY file.txt /up\n"
        "COPY dir /rel/\nADD file.txt /addlink\n",
        {**_FILE, "dir/a": (0o600, "a\n")}),
    "dest-dot": (
        "WORKDIR /w\nCOPY file.txt .\nCOPY dir /x/.\nCOPY file.txt /y/.\nCOPY dir ./.\nCOPY file.txt /z.\n",
        {**_FILE, "dir/a": (0o600, "a\n")}),
    "chown-names": (
        "RUN echo 'svc:x:1500:50::/:/bin/sh' >> /etc/passwd\n"
        "COPY --chown=svc file.txt /a\nCOPY --chown=svc:app file.txt /b\nCOPY --chown=app file.txt /c\n"
        "COPY --chown=1500 file.txt /d\nCOPY --chown=app:50 file.txt /e\nCOPY --chown=1234:staff file.txt /f\n",
        _FILE),
    "from-stage-owners": (
        "FROM $BASE AS src\nRUN mkdir -p /o/sub && echo x > /o/f && ln -s f /o/l && chown -R 1000:50 /o"
        " && chmod 700 /o/sub && chmod 604 /o/f && chown -h 1500:1500 /o/l\n"
        "FROM $BASE\nCOPY --from=0 /o /o1\nCOPY --from=0 --chown=app:staff /o /o2\n"
        "COPY --from=0 --chmod=755 /o/f /o3\nCOPY --from=0 /o/ /o4/\n"
        "RUN --mount=type=bind,from=src,target=/home,rw stat -c '%u:%g %n' /home/o /home/o/f > /rw-owners\n",
        {}),
    "empty-dir": (
        "COPY empty /e/\nCOPY empty /tmp/\nCOPY empty /f\n",
        {"empty": ("dir", 0o750)}),
    "hard-links": (
        "COPY hl /hl/\nCOPY hl/a hl/b /sep/\nCOPY hl /tmp/\n",
        {"hl/a": (0o640, "same\n"), "hl/b": ("hard", "hl/a"), "hl/sub/c": ("hard", "hl/a")}),
    "wildcard-none": (
        "COPY nomatch* /x/\nCOPY file.txt nothing-here-* /y/\n",
        _FILE),
    "from-root": (
        "FROM $BASE AS s0\nRUN echo made > /made\n"
        "FROM $BASE AS b2\nCOPY --from=s0 / /\n"
        "FROM $BASE\nCOPY --from=b2 / /copy/\n"
        "RUN --mount=type=bind,from=s0,target=/home ls -a /home /home/etc /home/dev > /listed\n"
        f"COPY --from={PREFIX}-base:latest /etc /img-etc/\n"
        f"RUN --mount=type=bind,from={PREFIX}-base:latest,target=/root ls -a /root /root/etc > /listed2\n",
        {}),
    "scratch": ("FROM scratch\nCOPY file.txt /\n", _FILE),
    "workdir": (
        "WORKDIR /tmp\nWORKDIR /app/\nWORKDIR /\nWORKDIR sub\nWORKDIR /app/\n",
        {}),
    "hostname": ("RUN hostname > /h\n", {}),
    "hostname-host": ("RUN hostname > /h\n", {}),
    "hostname-none": ("RUN hostname > /h\n", {}),
}
# `docker build` options of a case (the Dockerfile frontend of docker 20.10 has no RUN --network)
BUILD_OPTIONS = {"hostname-host": ["--network", "host"], "hostname-none": ["--network", "none"]}


def _context(d: Path, name: str) -> None:
    body, files = CASES[name]
    d.mkdir(parents=True, exist_ok=True)
    head = "ARG BASE\n" if body.startswith("FROM ") else "ARG BASE\nFROM $BASE\n"
    (d / "Dockerfile").write_text(head + body)
    for rel, spec in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if spec[0] == "link":
            os.symlink(spec[1], p)
        elif spec[0] == "hard":
            os.link(d / spec[1], p)
        elif spec[0] == "dir":
            p.mkdir()
            os.chmod(p, spec[1])
        else:
            p.write_text(spec[1])
            os.chmod(p, spec[0])
    for p in [*d.rglob("*"), d]:
        os.utime(p, (1700000000, 1700000000), follow_symlinks=False)


# --------------------------------------------------------------------- an image's own filesystem


def _apply(fs: dict, tf: tarfile.TarFile) -> None:
    for ti in tf:
        path = ti.name.lstrip("./").rstrip("/")
        if not path:
            continue
        parent, _, base = path.rpartition("/")
        if base == ".wh..wh..opq":
            for p in [p for p in fs if p.startswith(parent + "/")]:
                del fs[p]
            continue
        if base.startswith(".wh."):
            gone = (parent + "/" if parent else "") + base[4:]
            for p in [p for p in fs if p == gone or p.startswith(gone + "/")]:
                del fs[p]
            continue
        if ti.islnk():
            fs[path] = dict(fs[ti.linkname.lstrip("./")])
            continue
        content = ""
        if ti.isreg():
            data = tf.extractfile(ti).read()
            try:
                content = data.decode() if len(data) <= 64 else ""
            except UnicodeDecodeError:
                content = ""
            content = content or "sha256:" + hashlib.sha256(data).hexdigest()[:16]
            content = content.replace(socket.gethostname(), "<host>")
        kind = "d" if ti.isdir() else "l" if ti.issym() else "f" if ti.isreg() else "o"
        if path in fs and kind == "d" and fs[path]["kind"] == "d":
            pass  # a directory entry again in a later layer: its new metadata wins, content stays
        elif path in fs:
            for p in [p for p in fs if p.startswith(path + "/")]:
                del fs[p]
        fs[path] = {"kind": kind, "mode": oct(ti.mode & 0o7777), "uid": ti.uid, "gid": ti.gid,
                    "target": ti.linkname if ti.issym() else "", "content": content,
                    "inode": f"{id(tf)}:{path}"}


def image_fs(save_tar: bytes) -> tuple[dict, int]:
    """The flattened filesystem of the one image in a `save` stream, and its layer count."""
    outer = tarfile.open(fileobj=io.BytesIO(save_tar))
    manifest = json.load(outer.extractfile("manifest.json"))[0]
    fs: dict = {}
    for layer in manifest["Layers"]:
        with tarfile.open(fileobj=outer.extractfile(layer)) as tf:
            _apply(fs, tf)
    groups: dict = {}
    for p, v in fs.items():
        groups.setdefault(v["inode"], []).append(p)
    out = {}
    for p, v in sorted(fs.items()):
        shared = groups[v["inode"]]
        row = [v["kind"], v["mode"], v["uid"], v["gid"], v["target"], v["content"]]
        if len(shared) > 1:
            row.append(sorted(shared))
        out[p] = row
    return out, len(manifest["Layers"])


def summarize(cfg: dict, layers: int, base_fs: dict, fs: dict) -> dict:
    return {"config": {k: cfg.get(k) or None for k in CONFIG_KEYS}, "layers": layers,
            "changed": {p: v for p, v in fs.items() if base_fs.get(p) != v},
            "removed": sorted(p for p in base_fs if p not in fs)}


# --------------------------------------------------------------------- the two tools


class LaminaTool:
    def __init__(self, root: Path, tar: Path) -> None:
        self.root = root
        self.base = f"{PREFIX}-base:latest"  # docker's name: cases name the base image itself
        lamina(root, "import", tar, self.base)
        self.base_fs, _ = self.image(self.base)

    def build(self, d: Path, tag: str, options=()) -> None:
        lamina(self.root, "build", *options, "--build-arg", f"BASE={self.base}", "-t", tag, d)

    def image(self, tag: str) -> tuple[dict, int]:
        return image_fs(lamina(self.root, "save", tag).stdout)

    def config(self, tag: str) -> dict:
        return json.loads(lamina(self.root, "inspect", "--type", "image", tag).stdout)[0]["Config"]


class DockerTool(Docker):
    def __init__(self, exe: str, tar: Path) -> None:
        self.exe = exe
        self.base = f"{PREFIX}-base:latest"
        with open(tar, "rb") as f:
            subprocess.run([exe, "import", "-", self.base], stdin=f, check=True, capture_output=True)
        self.base_fs, _ = self.image(self.base)

    def build(self, d: Path, tag: str, options=()) -> None:
        self.run("build", *options, "--build-arg", f"BASE={self.base}", "-t", tag, d, env={"DOCKER_BUILDKIT": "1"})

    def image(self, tag: str) -> tuple[dict, int]:
        return image_fs(self.run("save", tag).stdout)


def build_all(tool, tmp_path: Path, names) -> dict:
    out = {}
    for name in names:
        d = tmp_path / type(tool).__name__ / name
        _context(d, name)
        tag = f"{PREFIX}-{name}:latest"
        tool.build(d, tag, BUILD_OPTIONS.get(name, ()))
        fs, layers = tool.image(tag)
        out[name] = json.loads(json.dumps(summarize(tool.config(tag), layers, tool.base_fs, fs)))
    return out


# --------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def lamina_results(tmp_path_factory, busybox_tar):
    tmp = tmp_path_factory.mktemp("build-copy-semantics")
    tool = LaminaTool(tmp / "store", busybox_tar)
    out = {}
    for name in CASES:
        try:
            out.update(build_all(tool, tmp, [name]))
        except AssertionError as e:  # a build lamina refuses is a mismatch of that case only
            out[name] = {"error": str(e).splitlines()[-1]}
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded(lamina_results, name):
    recorded = json.loads(DATA.read_text())["cases"]
    if name not in recorded:
        pytest.skip(f"no recording for {name} yet (run with Docker and LAMINA_RECORD_BUILD=1)")
    assert lamina_results[name] == recorded[name]


@pytest.mark.docker
def test_against_docker(lamina_results, tmp_path, busybox_tar):
    exe = _docker()
    if exe is None:
        pytest.skip("no Docker daemon answers `docker info`")
    tool = DockerTool(exe, busybox_tar)
    try:
        theirs = build_all(tool, tmp_path, CASES)
    finally:
        tool.cleanup([f"{PREFIX}-{n}:latest" for n in CASES])
    if os.environ.get("LAMINA_RECORD_BUILD"):
        DATA.parent.mkdir(parents=True, exist_ok=True)
        DATA.write_text(json.dumps({"docker": "BuildKit (DOCKER_BUILDKIT=1), docker 20.10", "cases": theirs},
                                   indent=1, sort_keys=True) + "\n")
    bad = [name for name in CASES if lamina_results[name] != theirs[name]]
    assert not bad, bad


# --------------------------------------------------------------------- without docker: confinement


def test_copy_onto_links_out_of_the_root_stays_in_the_root(tmp_path, busybox_tar):
    """A link in the image aimed at the host (relative with `..`s, or absolute) is
    written through inside the image's root, never on the host."""
    host = tmp_path / "host"
    host.mkdir()
    root = tmp_path / "store"
    lamina(root, "import", busybox_tar, "base:latest")
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "file.txt").write_text("file\n")
    (d / "Dockerfile").write_text(
        f"FROM base:latest\nRUN ln -s {'../' * 12}{str(host).lstrip('/')}/rel /rel && ln -s {host}/abs /abs\n"
        "COPY file.txt /rel\nCOPY file.txt /abs\n")
    lamina(root, "build", "-t", "esc:1", d)
    assert list(host.iterdir()) == []
    fs, _ = image_fs(lamina(root, "save", "esc:1").stdout)
    rel_host = str(host).lstrip("/")
    assert fs[f"{rel_host}/rel"][0::5] == ["f", "file\n"] and fs[f"{rel_host}/abs"][0::5] == ["f", "file\n"]
    assert fs["rel"][0] == fs["abs"][0] == "l"


def test_from_source_is_the_image_layers_on_the_copy_driver(tmp_path, busybox_tar):
    """The copy snapshotter's view of a --from source is its layers too (no init layer)."""
    root = tmp_path / "store"
    drv = ("--storage-driver", "copy")
    lamina(root, *drv, "import", busybox_tar, "base:latest")
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Dockerfile").write_text("FROM base:latest AS s0\nRUN echo made > /made\n"
                                  "FROM base:latest\nCOPY --from=s0 / /copy/\n"
                                  "RUN --mount=type=bind,from=s0,target=/home ls -a /home > /listed\n")
    lamina(root, *drv, "build", "-t", "view:1", d)
    fs, _ = image_fs(lamina(root, *drv, "save", "view:1").stdout)
    assert fs["copy/made"][5] == "made\n"
    for leak in (".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab", "dev/console"):
        assert f"copy/{leak}" not in fs
    listed = lamina(root, *drv, "run", "--rm", "view:1", "cat", "/listed").stdout.decode().split()
    assert ".dockerenv" not in listed and "made" in listed


def test_resolve_leaf_follows_final_links_inside_the_root(tmp_path):
    from lamina.archive.inroot import InRoot, resolve_leaf

    r = tmp_path / "root"
    (r / "real").mkdir(parents=True)
    os.symlink("/real/f", r / "abs")
    os.symlink("../../../nowhere/made", r / "dangling")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    os.symlink("/", r / "top")
    tree = InRoot(str(r))
    try:
        assert resolve_leaf(tree, "/abs") == ("real", "f")
        assert resolve_leaf(tree, "/dangling") == ("nowhere", "made")
        assert tree.made_dirs == ["nowhere"] and (r / "nowhere").is_dir()
        assert resolve_leaf(tree, "/new") == ("", "new")
        with pytest.raises(OSError) as e:
            resolve_leaf(tree, "/loop1")
        assert e.value.errno == errno.ELOOP
        with pytest.raises(IsADirectoryError):
            resolve_leaf(tree, "/top")
    finally:
        tree.close()
