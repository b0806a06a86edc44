"""Images built by lamina compared with what Docker (BuildKit) builds from the same files.

Each case is a Dockerfile plus a small context, built FROM the busybox base of
conftest (imported into both tools from the same tar).  Compared: the config
fields users see (Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts,
Volumes, Healthcheck, StopSignal, Shell, OnBuild) and the flattened filesystem
(`export` of a container), as a delta against the base: paths, type, mode,
owner, link target and content digest.

Docker's results are recorded in tests/data/build/docker_expected.json, so
`test_recorded` always runs; `test_against_docker` rebuilds with Docker when a
daemon answers (set LAMINA_RECORD_BUILD=1 to rewrite the recording).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import requires_root
from test_build_exec import lamina

pytestmark = requires_root
DATA = Path(__file__).parent / "data" / "build" / "docker_expected.json"
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes",
               "Healthcheck", "StopSignal", "Shell", "OnBuild")
SKIP_PATHS = (".dockerenv", "dev", "proc", "sys", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab")

# name -> (Dockerfile after `FROM $BASE`, context files {path: (mode, text) | ("link", target)})
CASES = {
    "metadata": (
        "ENV A=1 B=\"two words\"\nENV C d e\nLABEL one=1 \"two\"=\"2 2\"\nEXPOSE 80 443/udp 8000-8001\n"
        "VOLUME [\"/data\"]\nVOLUME /v1 /v2\nSTOPSIGNAL SIGQUIT\n"
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=1s --retries=2 CMD [\"true\"]\n"
        "SHELL [\"/bin/sh\", \"-ec\"]\nWORKDIR /srv\nWORKDIR app\nUSER app:staff\n"
        "ENTRYPOINT [\"/bin/echo\"]\nCMD [\"hello\"]\nONBUILD RUN echo child\n",
        {}),
    "entrypoint-shell": ("CMD [\"ignored\"]\nENTRYPOINT echo shell form\n", {}),
    "cmd-shell": ("ENV X=1\nCMD echo $X\n", {}),
    "copy": (
        "COPY file.txt /one/\nCOPY file.txt /renamed\nCOPY dir /dir-content\nCOPY dir/ /dir-slash/\n"
        "COPY g*.md /globs/\nCOPY --chown=app:staff file.txt dir /owned/\nCOPY --chown=1000 exec.sh /by-id\n"
        "COPY links /links/\nWORKDIR /w\nCOPY file.txt relative\n",
        {"file.txt": (0o644, "file\n"), "exec.sh": (0o755, "#!/bin/sh\necho hi\n"),
         "dir/a": (0o600, "a\n"), "dir/sub/b": (0o640, "b\n"), "g1.md": (0o644, "1"), "g2.md": (0o644, "2"),
         "links/target": (0o644, "t\n"), "links/rel": ("link", "target"), "links/abs": ("link", "/etc/passwd")}),
    "run": (
        "RUN echo new > /new && rm /bin/vi && mkdir -p /a/b && chmod 700 /a && ln -s /new /a/link\n"
        "RUN echo more >> /new && chown 1000:50 /a/b && rm -r /home\n"
        "USER app\nWORKDIR /app-owned/sub\nRUN touch mine\n",
        {}),
    "multistage": (
        "RUN echo built > /artifact && mkdir /out && cp /artifact /out/x\n"
        "FROM $BASE\nARG UNUSED\nCOPY --from=0 /artifact /from-index\nCOPY --from=0 /out /out-copy\n",
        {}),
    "args": (
        "ARG V=default\nARG W\nENV FROM_ARG=$V EMPTY=${W:-fallback} LITERAL=\\$V\nLABEL v=${V} w=\"${W}\"\n"
        "WORKDIR /dir-$V\nRUN echo \"$V|$W\" > run.txt\n",
        {}),
    "chmod-mount": (
        "COPY --chmod=751 file.txt /f\nCOPY --chmod=640 d /d/\n"
        # targets that exist: BuildKit before 0.13 leaves the stubs of new ones in the image
        "RUN --mount=type=tmpfs,target=/tmp touch /tmp/x && ls /tmp > /listed\n"
        "RUN --mount=type=bind,source=d,target=/root cat /root/y > /bound\n",
        {"file.txt": (0o644, "file\n"), "d/y": (0o644, "y\n"), "d/sub/z": (0o600, "z\n")}),
    "env-paths": (
        "ENV D=/opt/app NAME=cfg\nCOPY file.txt $D/${NAME}.txt\nUSER 1000:1000\nWORKDIR $D/work\n"
        "COPY --chown=1000 dir ./sub/\nRUN mkdir made && echo $D > made/where\n"
        "USER root\nEXPOSE ${NAME:+8080}\nLABEL path=$D\n",
        {"file.txt": (0o640, "file\n"), "dir/a": (0o600, "a\n"), "dir/s/b": (0o644, "b\n")}),
    "add-tar": (
        "ADD bundle.tar.gz /extracted/\nADD plain.txt /plain/\n",
        {"plain.txt": (0o644, "plain\n")}),
}


def _context(d: Path, name: str) -> None:
    body, files = CASES[name]
    d.mkdir(parents=True, exist_ok=True)
    (d / "Dockerfile").write_text("ARG BASE\nFROM $BASE\n" + body)
    for rel, spec in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if spec[0] == "link":
            os.symlink(spec[1], p)
        else:
            p.write_text(spec[1])
            os.chmod(p, spec[0])
    if name == "add-tar":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for n, data in (("t/inner.txt", b"inner\n"), ("t/deeper/x", b"x")):
                ti = tarfile.TarInfo(n)
                ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = len(data), 0o640, 1000, 50, 1700000000
                tf.addfile(ti, io.BytesIO(data))
        (d / "bundle.tar.gz").write_bytes(buf.getvalue())
    for p in d.rglob("*"):
        os.utime(p, (1700000000, 1700000000), follow_symlinks=False)


def listing(tar_bytes: bytes) -> dict:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        for ti in tf:
            path = ti.name.lstrip("./").rstrip("/")
            if not path or any(path == s or path.startswith(s + "/") for s in SKIP_PATHS):
                continue
            digest = ""
            if ti.isreg():
                digest = hashlib.sha256(tf.extractfile(ti).read()).hexdigest()[:16]
            kind = "d" if ti.isdir() else "l" if ti.issym() else "h" if ti.islnk() else "f" if ti.isreg() else "o"
            out[path] = [kind, oct(ti.mode & 0o7777), ti.uid, ti.gid, ti.linkname if ti.issym() else "", digest]
    return out


def delta(base: dict, built: dict) -> dict:
    return {"changed": {p: v for p, v in sorted(built.items()) if base.get(p) != v},
            "removed": sorted(p for p in base if p not in built)}


def summarize(cfg: dict, base_fs: dict, fs: dict) -> dict:
    c = {k: cfg.get(k) or None for k in CONFIG_KEYS}
    return {"config": c, "fs": delta(base_fs, fs)}


# --------------------------------------------------------------------- the two tools


class Lamina:
    def __init__(self, root: Path, tar: Path) -> None:
        self.root = root
        lamina(root, "import", tar, "base:latest")
        self.base_fs = self.export("base:latest")

    def build(self, d: Path, tag: str) -> None:
        lamina(self.root, "build", "--build-arg", "BASE=base:latest", "-t", tag, d)

    def export(self, image: str) -> dict:
        cid = lamina(self.root, "create", image, "true").stdout.decode().strip()
        try:
            return listing(lamina(self.root, "export", cid).stdout)
        finally:
            lamina(self.root, "rm", cid)

    def config(self, image: str) -> dict:
        return json.loads(lamina(self.root, "inspect", "--type", "image", image).stdout)[0]["Config"]


def _docker() -> str | None:
    exe = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
    if exe is None:
        return None
    try:
        ok = subprocess.run([exe, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return None
    return exe if ok else None


class Docker:
    PREFIX = "lamina-build-test"

    def __init__(self, exe: str, tar: Path) -> None:
        self.exe = exe
        self.base = f"{self.PREFIX}-base:latest"
        with open(tar, "rb") as f:
            subprocess.run([exe, "import", "-", self.base], stdin=f, check=True, capture_output=True)
        self.base_fs = self.export(self.base)

    def run(self, *args, env=None, **kw):
        p = subprocess.run([self.exe, *map(str, args)], capture_output=True, timeout=300,
                           env={**os.environ, **(env or {})}, **kw)
        if p.returncode != 0:
            raise AssertionError(f"docker {args}: {p.stderr.decode()}")
        return p

    def build(self, d: Path, tag: str) -> None:
        self.run("build", "--build-arg", f"BASE={self.base}", "-t", tag, d, env={"DOCKER_BUILDKIT": "1"})

    def export(self, image: str) -> dict:
        cid = self.run("create", image, "true").stdout.decode().strip()
        try:
            return listing(self.run("export", cid).stdout)
        finally:
            self.run("rm", cid)

    def config(self, image: str) -> dict:
        return json.loads(self.run("inspect", image).stdout)[0]["Config"]

    def cleanup(self, tags: list[str]) -> None:
        subprocess.run([self.exe, "rmi", *tags, self.base], capture_output=True)


def build_all(tool, tmp_path: Path, names) -> dict:
    out = {}
    for name in names:
        d = tmp_path / type(tool).__name__ / name
        _context(d, name)
        tag = f"{Docker.PREFIX}-{name}:latest"
        tool.build(d, tag)
        out[name] = summarize(tool.config(tag), tool.base_fs, tool.export(tag))
    return out


# --------------------------------------------------------------------- tests


def _normalise(result: dict) -> dict:
    """JSON round trip (tuples vs lists) for comparison with the recording."""
    return json.loads(json.dumps(result))


@pytest.fixture(scope="module")
def lamina_results(tmp_path_factory, busybox_tar):
    tmp = tmp_path_factory.mktemp("build-docker-cmp")
    tool = Lamina(tmp / "store", busybox_tar)
    return _normalise(build_all(tool, tmp, CASES))


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
    tool = Docker(exe, busybox_tar)
    try:
        theirs = _normalise(build_all(tool, tmp_path, CASES))
    finally:
        tool.cleanup([f"{Docker.PREFIX}-{n}:latest" for n in CASES])
    if os.environ.get("LAMINA_RECORD_BUILD"):
        DATA.parent.mkdir(parents=True, exist_ok=True)
        DATA.write_text(json.dumps({"docker": "BuildKit (DOCKER_BUILDKIT=1)", "cases": theirs},
                                   indent=1, sort_keys=True) + "\n")
    for name in CASES:
        assert lamina_results[name] == theirs[name], name
