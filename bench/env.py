"""The environment a benchmark run needs: lamina's own store, Docker's engine, a loopback
registry, Podman if present, and the base images and data (one rootfs tarball imported
into every tool), cached under .cache/bench/ of the repository."""

from __future__ import annotations

import io
import os
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
BENCH_CACHE = CACHE / "bench"
PREFIX = "lamina-bench"          # every docker container name / image repository we create
DATA_VERSION = 1                 # bump when the generated data changes (invalidates the cache)

_t0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


class CmdError(Exception):
    pass


def sh(argv: list[str], *, timeout: float = 600, check: bool = True, env: Optional[dict] = None,
       cwd: Optional[str] = None, input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """An untimed helper command (set-up, clean-up); output captured."""
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, env=env, cwd=cwd,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CmdError(f"{' '.join(argv[:6])}: timed out after {timeout:.0f}s") from None
    except FileNotFoundError as e:
        raise CmdError(str(e)) from None
    if check and p.returncode != 0:
        from timing import _tail
        verb = next((str(a) for a in argv[1:] if not str(a).startswith("-") and "/" not in str(a)), "")
        raise CmdError(f"{Path(str(argv[0])).name} {verb}: exit {p.returncode}: {_tail(p.stderr)}")
    return p


def apt_install(*pkgs: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"apt-get install {' '.join(pkgs)}")
    sh(["apt-get", "update", "-qq"], env=env, timeout=600, check=False)
    sh(["apt-get", "install", "-y", "-qq", *pkgs], env=env, timeout=1200)


# --------------------------------------------------------------------------- tools


class Tool:
    """A docker-shaped CLI (lamina, docker, podman): the verbs the harness itself uses."""

    name = "tool"

    def cmd(self, *args: str) -> list[str]:
        raise NotImplementedError

    def env(self) -> Optional[dict]:
        return None

    def run(self, *args: str, timeout: float = 600, check: bool = True, env: Optional[dict] = None):
        return sh(self.cmd(*args), timeout=timeout, check=check, env=env or self.env())

    def image_exists(self, ref: str) -> bool:
        return self.run("inspect", "--type", "image", ref, check=False, timeout=60).returncode == 0

    def rmi(self, *refs: str, force: bool = True) -> None:
        if refs:
            self.run("rmi", *(["-f"] if force else []), *refs, check=False, timeout=300)

    def rm(self, *names: str) -> None:
        if names:
            self.run("rm", "-f", *names, check=False, timeout=300)

    def import_tar(self, tar: Path, ref: str) -> None:
        self.run("import", str(tar), ref, timeout=1800)


class Lamina(Tool):
    name = "lamina"

    def __init__(self, root: Path):
        self.bin = str(REPO / ".venv" / "bin" / "lamina")
        self.root = root
        self._verbs: dict[str, bool] = {}

    def cmd(self, *args: str) -> list[str]:
        return [self.bin, "--root", str(self.root), *args]

    def has(self, verb: str) -> bool:
        if verb not in self._verbs:
            p = sh(self.cmd(verb, "--help"), check=False, timeout=60)
            self._verbs[verb] = p.returncode == 0
        return self._verbs[verb]

    def missing(self, *verbs: str) -> Optional[str]:
        """'not implemented yet (lamina X)' for the first verb lamina does not have, else None."""
        for v in verbs:
            if not self.has(v):
                return f"not implemented yet (lamina {v})"
        return None

    def version(self) -> str:
        p = sh([self.bin, "--version"], check=False, timeout=60)
        return p.stdout.decode().strip() or "?"

    def destroy(self) -> None:
        """Remove the whole bench store: containers first, then any mount left below it."""
        if not self.root.exists():
            return
        p = sh(self.cmd("ps", "-a", "-q"), check=False, timeout=60)
        ids = p.stdout.decode().split()
        if ids:
            self.rm(*ids)
        unmount_below(self.root)


def unmount_below(path: Path) -> None:
    prefix = str(path.resolve()).rstrip("/") + "/"
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix):
                mounts.append(mp)
    for mp in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


class Docker(Tool):
    name = "docker"
    LOG = Path("/var/log/lamina-bench-dockerd.log")

    def __init__(self):
        # Debian's docker.io client (20.10) talks BuildKit by itself; a newer client found
        # first on PATH may insist on the buildx plug-in, so prefer the packaged one.
        self.bin = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker")
        self.reason: Optional[str] = "not checked"
        self._buildkit: Optional[str] = "not checked"
        self.server_version = "?"

    def cmd(self, *args: str) -> list[str]:
        return [self.bin or "docker", *args]

    def build_env(self, buildkit: bool) -> dict:
        return dict(os.environ, DOCKER_BUILDKIT="1" if buildkit else "0")

    def _ping(self) -> bool:
        if not self.bin:
            return False
        p = sh(self.cmd("info", "--format", "{{.ServerVersion}}"), check=False, timeout=30)
        if p.returncode == 0:
            self.server_version = p.stdout.decode().strip()
        return p.returncode == 0

    def ensure(self) -> Optional[str]:
        """Install docker.io and start dockerd when needed. Returns why Docker cannot run, or None."""
        try:
            if not self.bin or not (shutil.which("dockerd") or os.path.exists("/usr/sbin/dockerd")):
                apt_install("docker.io")
                self.bin = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker")
            if not self._ping():
                log(f"starting dockerd in the background (log: {self.LOG})")
                with open(self.LOG, "ab") as f:
                    subprocess.Popen([shutil.which("dockerd") or "/usr/sbin/dockerd"], stdin=subprocess.DEVNULL,
                                     stdout=f, stderr=f, start_new_session=True)
                deadline = time.monotonic() + 90
                while not self._ping():
                    if time.monotonic() > deadline:
                        raise CmdError(f"dockerd did not answer within 90s (see {self.LOG})")
                    time.sleep(1)
            self.reason = None
        except CmdError as e:
            self.reason = f"Docker unavailable: {e}"
        return self.reason

    def buildkit_reason(self) -> Optional[str]:
        """Why BuildKit builds do not work here, or None."""
        if self._buildkit == "not checked":
            ref = f"{PREFIX}/probe:buildkit"
            p = sh(self.cmd("build", "-q", "-t", ref, "-"), input=b"FROM scratch\nLABEL probe=1\n",
                   env=self.build_env(True), check=False, timeout=120)
            if p.returncode == 0:
                self._buildkit = None
                self.rmi(ref)
            else:
                tail = p.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
                self._buildkit = f"BuildKit unavailable: {' '.join(tail)}"
        return self._buildkit

    def cleanup_all(self) -> None:
        """Remove every container and image this harness made (names/repositories lamina-bench*)."""
        if self.reason:
            return
        p = sh(self.cmd("ps", "-a", "-q", "--filter", f"name={PREFIX}-"), check=False, timeout=60)
        self.rm(*p.stdout.decode().split())
        p = sh(self.cmd("images", "--format", "{{.Repository}}:{{.Tag}}"), check=False, timeout=60)
        refs = [r for r in p.stdout.decode().split()
                if r.split("/", 1)[0] == PREFIX or f"/{PREFIX}/" in r]
        self.rmi(*refs)


class Podman(Tool):
    name = "podman"

    def __init__(self):
        self.bin = shutil.which("podman")
        self.reason: Optional[str] = "not checked"
        self.used = False
        self.extra: list[str] = []

    def cmd(self, *args: str) -> list[str]:
        return [self.bin or "podman", *self.extra, *args]

    def probe(self, small_tar, ref: str) -> Optional[str]:
        """Can podman start a container here (with its default runtime, else with runc)?
        Returns why not, or None."""
        if not self.bin:
            self.reason = "podman is not installed (apt-get install podman buildah, or bench/run --with-podman)"
            return self.reason
        self.used = True
        try:
            self.import_tar(small_tar(), ref)
        except CmdError as e:
            self.reason = f"podman cannot import here: {e}"
            return self.reason
        errors = []
        for extra in ([], ["--runtime", "runc"]):
            p = sh([self.bin, *extra, "run", "--rm", ref, "true"], check=False, timeout=90)
            if p.returncode == 0:
                self.extra, self.reason = extra, None
                return None
            tail = p.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            errors.append(f"{'runc' if extra else 'default runtime'}: {' '.join(tail)[-200:]}")
        self.reason = "podman cannot start containers on this VM (" + "; ".join(errors) + ")"
        return self.reason

    def cleanup_all(self) -> None:
        if not self.bin or not self.used:
            return
        p = sh(self.cmd("ps", "-a", "-q", "--filter", f"name={PREFIX}-"), check=False, timeout=60)
        self.rm(*p.stdout.decode().split())
        p = sh(self.cmd("images", "--format", "{{.Repository}}:{{.Tag}}"), check=False, timeout=60)
        self.rmi(*[r for r in p.stdout.decode().split() if f"{PREFIX}/" in r])


# --------------------------------------------------------------------------- registry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """Debian's docker-registry on 127.0.0.1:<free port>, storage in a temp dir."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = workdir / "registry-storage"
        self.proc: Optional[subprocess.Popen] = None

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"

    def start(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        exe = shutil.which("docker-registry")
        if not exe:
            apt_install("docker-registry")
            exe = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        self.storage.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "registry.yml"
        cfg.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
        )
        logf = open(self.workdir / "registry.log", "ab")
        self.proc = subprocess.Popen([exe, "serve", str(cfg)], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise CmdError(f"registry on {self.host} did not start (see {self.workdir}/registry.log)")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def reset(self) -> None:
        """An empty registry: every push uploads every blob again."""
        self.stop()
        shutil.rmtree(self.storage, ignore_errors=True)
        self.start()


# --------------------------------------------------------------------------- data


def busybox_binary() -> Path:
    """Debian's static busybox (apt-get download busybox-static; dpkg-deb -x), cached."""
    target = CACHE / "busybox"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        sh(["apt-get", "download", "busybox-static"], cwd=work, timeout=300)
        deb = next(Path(work).glob("busybox-static_*.deb"))
        sh(["dpkg-deb", "-x", str(deb), f"{work}/x"])
        shutil.copy2(f"{work}/x/bin/busybox", f"{target}.tmp")
        os.replace(f"{target}.tmp", target)
    return target


class Filler:
    """Deterministic file contents: half incompressible, half text-like (gzip ~3x)."""

    POOL = 8 << 20

    def __init__(self, seed: int = 42):
        rnd = random.Random(seed)
        self.rand = rnd.randbytes(self.POOL)
        words = ["".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 9))) for _ in range(3000)]
        text = bytearray()
        while len(text) < self.POOL:
            line = " ".join(rnd.choices(words, k=12)) + "\n"
            text += line.encode()
        self.text = bytes(text[: self.POOL])

    def data(self, i: int, size: int) -> bytes:
        pool = self.rand if i % 2 else self.text
        size = min(size, self.POOL - 64)
        off = (i * 104729 * 64) % (self.POOL - size)
        return f"{i}\n".encode() + pool[off: off + size]


def file_sizes(total: int, count: int, seed: int = 7) -> list[int]:
    """count sizes adding up to about total: 90% small files (30% of the bytes), 10% large."""
    rnd = random.Random(seed)
    n_large = max(1, count // 10)
    n_small = count - n_large
    small = int(total * 0.3 / max(1, n_small))
    large = int(total * 0.7 / n_large)
    sizes = [max(1, int(small * rnd.uniform(0.5, 1.5))) for _ in range(n_small)]
    sizes += [max(1, int(large * rnd.uniform(0.5, 1.5))) for _ in range(n_large)]
    rnd.shuffle(sizes)
    return sizes


def data_files(total: int, count: int, per_dir: int = 200):
    """(relative path, bytes) of the generated data set."""
    filler = Filler()
    for i, size in enumerate(file_sizes(total, count)):
        yield f"d{i // per_dir:04d}/f{i:06d}", filler.data(i, size)


def _add(tf: tarfile.TarFile, name: str, *, data: bytes = b"", kind=tarfile.REGTYPE, mode=0o644,
         link: str = "") -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.uname, ti.gname = kind, mode, 1700000000, "root", "root"
    if kind == tarfile.SYMTYPE:
        ti.linkname = link
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)


def rootfs_tar(name: str, *, data_bytes: int = 0, data_count: int = 0) -> Path:
    """A busybox rootfs (plus /data of generated files) as a tarball, cached under .cache/bench/."""
    out = BENCH_CACHE / f"{name}-v{DATA_VERSION}.tar"
    if out.exists():
        return out
    BENCH_CACHE.mkdir(parents=True, exist_ok=True)
    log(f"generating {out.name} ({data_bytes / 1e6:.0f} MB of data in {data_count} files)")
    bb = busybox_binary()
    applets = sh([str(bb), "--list"]).stdout.decode().split()
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tf:
        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "dev", "proc", "sys"):
            _add(tf, d, kind=tarfile.DIRTYPE, mode=0o755)
        _add(tf, "tmp", kind=tarfile.DIRTYPE, mode=0o1777)
        _add(tf, "bin/busybox", data=bb.read_bytes(), mode=0o755)
        for a in applets:
            if a != "busybox":
                _add(tf, f"bin/{a}", kind=tarfile.SYMTYPE, link="busybox")
        _add(tf, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        _add(tf, "etc/group", data=b"root:x:0:\nnogroup:x:65534:\n")
        if data_count:
            _add(tf, "data", kind=tarfile.DIRTYPE, mode=0o755)
            seen = set()
            for rel, blob in data_files(data_bytes, data_count):
                d = rel.split("/")[0]
                if d not in seen:
                    seen.add(d)
                    _add(tf, f"data/{d}", kind=tarfile.DIRTYPE, mode=0o755)
                _add(tf, f"data/{rel}", data=blob)
    os.replace(tmp, out)
    return out


def copy_context(name: str, base_ref: str, *, data_bytes: int, data_count: int) -> Path:
    """A build context of generated files with a Dockerfile that COPYs it all, cached."""
    out = BENCH_CACHE / f"{name}-v{DATA_VERSION}"
    stamp = out / ".complete"
    if not stamp.exists():
        log(f"generating build context {out.name} ({data_bytes / 1e6:.0f} MB in {data_count} files)")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for rel, blob in data_files(data_bytes, data_count, per_dir=100):
            p = out / "data" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(blob)
            os.utime(p, (1700000000, 1700000000))
        stamp.write_text("ok\n")
    (out / "Dockerfile").write_text(f"FROM {base_ref}\nCOPY data /ctx/\n")
    (out / ".dockerignore").write_text(".complete\n")
    return out


def debian_minbase_tar() -> Path:
    """mmdebstrap --variant=minbase bookworm, cached where scripts/demo caches it too."""
    out = CACHE / "bookworm-minbase.tar"
    if out.is_file() and out.stat().st_size > 0:
        return out
    if out.is_dir():  # what an earlier bench left: mmdebstrap made a directory of a name without .tar
        shutil.rmtree(out)
    if not shutil.which("mmdebstrap"):
        apt_install("mmdebstrap")
    log("mmdebstrap --variant=minbase bookworm (once; cached in .cache/)")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / "partial-bookworm-minbase.tar"  # mmdebstrap picks its output's format from the name
    sh(["mmdebstrap", "--quiet", "--variant=minbase", "bookworm", str(tmp)], timeout=1500)
    os.replace(tmp, out)
    return out


class Bases:
    """Base images, the same tarball imported into each tool, on first use."""

    def __init__(self, sizes: dict):
        self.sizes = sizes
        self.failed: dict[tuple[str, str], str] = {}

    def tar(self, kind: str) -> Path:
        if kind == "small":
            return rootfs_tar("busybox-base")
        if kind == "debian":
            return debian_minbase_tar()
        total, count = self.sizes[kind]
        return rootfs_tar(f"busybox-{kind}-{total // 1_000_000}m-{count}", data_bytes=total, data_count=count)

    @staticmethod
    def ref(kind: str) -> str:
        return f"{PREFIX}/{kind}:latest"

    def ensure(self, kind: str, tool: Tool) -> str:
        ref = self.ref(kind)
        key = (kind, tool.name)
        if key in self.failed:
            raise CmdError(self.failed[key])
        if tool.image_exists(ref):
            return ref
        tar = self.tar(kind)
        log(f"  {tool.name}: import {tar.name} {ref}")
        try:
            tool.import_tar(tar, ref)
        except CmdError as e:
            self.failed[key] = f"{tool.name} import of the {kind} base failed: {e}"
            raise CmdError(self.failed[key]) from None
        return ref
