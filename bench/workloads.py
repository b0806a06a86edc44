"""The workloads: one function each, giving the variants (lamina, docker, docker BuildKit,
podman) of the same operation on the same base image. Every variant cleans up what it made."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from env import PREFIX, Bases, CmdError, Docker, Lamina, Podman, Registry, Tool, log, sh
import runtimefloor
from timing import Variant

# Sizes of the data sets. Quick: small enough for the whole --quick run to stay near 3 minutes.
FULL = {
    "copy": (280_000_000, 20_000),      # COPY context: bytes, files
    "big": (400_000_000, 2_000),        # push/pull/save/load image (busybox + generated /data)
    "largebase": (1_000_000_000, 10_000),  # the unchanged image below diff/commit
    "changes": 3_000,                   # files a container adds for diff/commit
    "build_steps": 10,
    "curve_changes": [1_000, 10_000, 100_000],
    "curve_base_changes": 1_000,
    "curve_steps": [10, 50, 100],
}
QUICK = {
    "copy": (20_000_000, 2_000),
    "big": (50_000_000, 500),
    "largebase": (100_000_000, 1_000),
    "changes": 300,
    "build_steps": 10,
    "curve_changes": [100, 1_000],
    "curve_base_changes": 100,
    "curve_steps": [5, 10],
}


def human(n: int) -> str:
    if n >= 1_000_000_000 and n % 1_000_000_000 == 0:
        return f"{n // 1_000_000_000}g"
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def size_label(n: int) -> str:
    return f"{n / 1e9:g} GB" if n >= 1_000_000_000 else f"{n / 1e6:g} MB"


@dataclass
class Workload:
    name: str
    title: str
    variants: Callable[[], list[Variant]]
    reference: str = "docker"          # the variant lamina is compared with (docker_s, ratio)
    target: Optional[float] = None     # ratio lamina/reference to reach
    runs: int = 3
    warmup: int = 1
    budget_s: float = 300
    setup: Optional[Callable[[], None]] = None   # once, before any variant (failure: all skip)
    teardown: Optional[Callable[[], None]] = None  # once, after all variants
    group: str = "main"
    x: Optional[int] = None            # the curve's x value
    metric: Optional[str] = None       # curve: diff / commit / build
    stateless: bool = False            # the same command can run back to back (hyperfine cross-check)
    settle: bool = False               # heavy disk work: sync and wait out freed inodes before each run (timing.Settle)
    info: dict = field(default_factory=dict)


class Ctx:
    """What the workloads share: the tools, the registry, the base images, the sizes."""

    def __init__(self, *, workdir: Path, lamina: Lamina, docker: Docker, podman: Podman,
                 bases: Bases, sizes: dict, quick: bool):
        self.workdir = workdir
        self.lamina = lamina
        self.docker = docker
        self.podman = podman
        self.bases = bases
        self.sizes = sizes
        self.quick = quick
        self._registry: Optional[Registry] = None
        self.users: dict[tuple[str, int], int] = {}     # (base, changes) -> workloads using it
        self._left: dict[tuple[str, str, int], int] = {}

    def container_name(self, base: str, n: int) -> str:
        return f"{PREFIX}-changes-{base}-{n}"

    def changed_container(self, tool: Tool, base: str, n: int, script: str) -> str:
        """The stopped container that made n changes on base, made once per tool (untimed) and
        shared by the diff and commit workloads of the same size."""
        key = (tool.name, base, n)
        name = self.container_name(base, n)
        if key not in self._left:
            ref = self.bases.ensure(base, tool)
            tool.rm(name)
            log(f"  {tool.name}: run --name {name} {ref} (makes {n:,} changes)")
            tool.run("run", "--name", name, ref, "sh", "-c", script, timeout=1800)
            self._left[key] = self.users.get((base, n), 1)
        return name

    def release(self, tool: Tool, base: str, n: int) -> None:
        """One workload is done with the container; the last one removes it."""
        key = (tool.name, base, n)
        if key in self._left:
            self._left[key] -= 1
            if self._left[key] <= 0:
                del self._left[key]
                tool.rm(self.container_name(base, n))

    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.workdir)
        self._registry.start()
        return self._registry

    def close(self) -> None:
        if self._registry:
            self._registry.stop()

    def variants(self, make: Callable[[Tool, Optional[dict], str], dict], *, lamina_verbs: tuple[str, ...],
                 builders: bool = False, podman: bool = False, timeout: float = 120) -> list[Variant]:
        """lamina, docker (classic builder where it builds), docker BuildKit, podman: make(tool, env)
        (and the variant's name) gives each one's Variant fields (command, setup, prepare, cleanup, teardown)."""
        out = [Variant("lamina", skip=self.lamina.missing(*lamina_verbs), timeout=timeout,
                       **make(self.lamina, None, "lamina"))]
        if builders:
            env = self.docker.build_env(False)
            out.append(Variant("docker", skip=self.docker.reason, env=env, timeout=timeout,
                               **make(self.docker, env, "docker")))
            env = self.docker.build_env(True)
            out.append(Variant("docker_buildkit", env=env, timeout=timeout,
                               skip=self.docker.reason or self.docker.buildkit_reason(),
                               **make(self.docker, env, "docker_buildkit")))
        else:
            out.append(Variant("docker", skip=self.docker.reason, timeout=timeout, **make(self.docker, None, "docker")))
        if podman and self.podman.reason is None:
            out.append(Variant("podman", timeout=timeout, **make(self.podman, None, "podman")))
        return out


def changes_script(n: int, per_dir: int = 1000) -> str:
    """Shell for busybox sh: n new files (in directories of per_dir), one changed file, one deleted."""
    full, rest = divmod(n, per_dir)
    return (
        "set -e\n"
        'mk() { mkdir -p "$1"; i=0; while [ $i -lt $2 ]; do echo "$i" > "$1/f$i"; i=$((i+1)); done; }\n'
        f"d=0; while [ $d -lt {full} ]; do mk /bench/d$d {per_dir}; d=$((d+1)); done\n"
        + (f"mk /bench/rest {rest}\n" if rest else "")
        + "echo bench >> /etc/group\nrm -f /bin/vi\n"
    )


def safe(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", name)


def expect(tool: Tool, image: str, script: str, want: Optional[str]) -> None:
    """The image runs and `sh -c script` in it prints want (None: any output, exit 0)."""
    out = tool.run("run", "--rm", image, "sh", "-c", script, timeout=300).stdout.decode().strip()
    if want is not None and out != want:
        raise CmdError(f"{image}: `{script}` printed {out[:80]!r}, expected {want!r}")


def registry_has(ctx: Ctx, ref: str) -> None:
    import urllib.request
    host, rest = ref.split("/", 1)
    name, tag = rest.rsplit(":", 1)
    req = urllib.request.Request(f"http://{host}/v2/{name}/manifests/{tag}", method="HEAD", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        if r.status != 200:
            raise CmdError(f"registry has no manifest for {ref}")


def at_least(path: Path, size: int) -> None:
    got = path.stat().st_size if path.exists() else 0
    if got < size:
        raise CmdError(f"{path.name} is {got} bytes, expected at least {size}")


# --------------------------------------------------------------------------- workloads


def w_run(ctx: Ctx) -> Workload:
    ref = Bases.ref("small")
    info: dict = {}

    def make(tool, env, vname):
        return dict(setup=lambda: ctx.bases.ensure("small", tool),
                    command=lambda i: tool.cmd("run", "--rm", ref, "true"))

    def variants():
        vs = ctx.variants(make, lamina_verbs=("import", "run"), podman=True, timeout=60)
        d = ctx.docker
        vs.insert(2, Variant("docker_host_net", skip=d.reason, timeout=60,
                             setup=lambda: ctx.bases.ensure("small", d),
                             command=lambda i: d.cmd("run", "--rm", "--network", "host", ref, "true")))
        vs += runtimefloor.foreground(ctx.lamina, ctx.workdir, ref, lambda: ctx.bases.ensure("small", ctx.lamina),
                                      skip=d.reason)  # the runtime's share of docker's time
        info["runtime"] = runtimefloor.runtime_name(ctx.lamina)
        return vs

    return Workload("run", "run --rm base true", variants, target=0.15, stateless=True,
                    runs=1 if ctx.quick else 7, budget_s=120, info=info)


def w_run_publish(ctx: Ctx) -> Workload:
    """run with a published port (issue 11: -p adds <= 20 ms to a bridge run); each tool
    its own free host port, so one's release never races the other's claim."""
    ref = Bases.ref("small")

    def make(tool, env, vname):
        import socket

        with socket.socket() as s:  # a free port now; --rm frees it after every run
            s.bind(("0.0.0.0", 0))
            port = s.getsockname()[1]
        return dict(setup=lambda: ctx.bases.ensure("small", tool),
                    command=lambda i: tool.cmd("run", "--rm", "-p", f"{port}:80", ref, "true"))

    return Workload("run-p", "run --rm -p PORT:80 base true", lambda: ctx.variants(
        make, lamina_verbs=("import", "run"), timeout=60), target=0.3, stateless=True,
        runs=1 if ctx.quick else 7, budget_s=120)


def _monitor_rss_kb(tool, name: str) -> Optional[int]:
    """VmRSS of the monitor keeping lamina's container `name` (issue 12: aim <= 10 MB)."""
    import sqlite3

    cid = tool.run("inspect", "-f", "{{.Id}}", name, timeout=60).stdout.decode().strip()
    db = sqlite3.connect(Path(tool.root) / "lamina.db")
    try:
        row = db.execute("SELECT monitor_pid FROM container_runs WHERE id=?", (cid,)).fetchone()
    finally:
        db.close()
    try:
        for line in Path(f"/proc/{row[0]}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, TypeError):
        pass
    return None


def w_run_detached(ctx: Ctx) -> Workload:
    """run -d base sleep 100 (issue 12: <= 0.3x docker); the container is removed untimed."""
    ref = Bases.ref("small")
    info: dict = {}

    def make(tool, env, vname):
        name = lambda i: f"{PREFIX}-detach-{vname}-{i}"  # noqa: E731

        def check(i):
            if tool.run("inspect", "-f", "{{.State.Running}}", name(i), timeout=60).stdout.strip() != b"true":
                raise CmdError(f"{name(i)} is not running after run -d")
            if vname == "lamina":
                info["monitor_rss_kb"] = _monitor_rss_kb(tool, name(i))

        return dict(setup=lambda: ctx.bases.ensure("small", tool),
                    command=lambda i: tool.cmd("run", "-d", "--name", name(i), ref, "sleep", "100"),
                    check=check, cleanup=lambda i: tool.run("rm", "-f", name(i), timeout=60, check=False))

    def variants():
        info["runtime"] = runtimefloor.runtime_name(ctx.lamina)
        return ctx.variants(make, lamina_verbs=("import", "run"), timeout=60) + runtimefloor.detached(
            ctx.lamina, ctx.workdir, ref, lambda: ctx.bases.ensure("small", ctx.lamina),
            skip=ctx.docker.reason)  # the runtime's share of docker's time

    return Workload("run-d", "run -d base sleep 100", variants, target=0.3, runs=1 if ctx.quick else 7,
                    budget_s=120, info=info)


def w_stop(ctx: Ctx) -> Workload:
    """stop of a detached container that exits on TERM (issue 12: <= docker)."""
    ref = Bases.ref("small")
    script = "trap 'exit 0' TERM; while :; do sleep 0.05; done"

    def make(tool, env, vname):
        name = lambda i: f"{PREFIX}-stop-{vname}-{i}"  # noqa: E731
        return dict(setup=lambda: ctx.bases.ensure("small", tool),
                    prepare=lambda i: tool.run("run", "-d", "--name", name(i), ref, "sh", "-c", script, timeout=60),
                    command=lambda i: tool.cmd("stop", name(i)),
                    cleanup=lambda i: tool.run("rm", "-f", name(i), timeout=60, check=False))

    return Workload("stop", "stop of a container that exits on TERM", lambda: ctx.variants(
        make, lamina_verbs=("import", "run", "stop"), timeout=60), target=1.0, runs=1 if ctx.quick else 7,
        budget_s=120)


def w_exec(ctx: Ctx) -> Workload:
    """exec CTR true into a running (detached) container (issue 12: <= 0.3x docker exec)."""
    ref = Bases.ref("small")
    info: dict = {}

    def make(tool, env, vname):
        name = f"{PREFIX}-exec-{vname}"

        def setup():
            ctx.bases.ensure("small", tool)
            tool.run("rm", "-f", name, timeout=60, check=False)
            tool.run("run", "-d", "--name", name, ref, "sleep", "3600", timeout=60)

        return dict(setup=setup, command=lambda i: tool.cmd("exec", name, "true"),
                    teardown=lambda: tool.run("rm", "-f", name, timeout=60, check=False))

    def variants():  # after lamina's, whose set-up starts the container its runtime execs into
        info["runtime"] = runtimefloor.runtime_name(ctx.lamina)
        return ctx.variants(make, lamina_verbs=("import", "run", "exec"), timeout=60) + runtimefloor.exec_true(
            ctx.lamina, f"{PREFIX}-exec-lamina", ref, lambda: ctx.bases.ensure("small", ctx.lamina),
            skip=ctx.docker.reason)

    return Workload("exec", "exec CTR true", variants, target=0.3, stateless=True,
                    runs=3 if ctx.quick else 10, budget_s=120, info=info)


def w_logs(ctx: Ctx) -> Workload:
    """logs of a container that wrote 100k lines (issue 12: <= 0.5x docker); the container
    is made once per tool (run -d, wait), untimed."""
    ref = Bases.ref("small")
    lines = 100_000

    def make(tool, env, vname):
        name = f"{PREFIX}-logs-{vname}"

        def setup():
            ctx.bases.ensure("small", tool)
            tool.run("rm", "-f", name, timeout=60, check=False)
            tool.run("run", "-d", "--name", name, ref, "seq", str(lines), timeout=60)
            tool.run("wait", name, timeout=300)

        def check(i):
            got = tool.run("logs", "--tail", "1", name, timeout=60).stdout.strip()
            if got != str(lines).encode():
                raise CmdError(f"logs of {name} ends with {got[:40]!r}, not {lines}")

        return dict(setup=setup, command=lambda i: tool.cmd("logs", name), check=check,
                    teardown=lambda: tool.run("rm", "-f", name, timeout=60, check=False))

    return Workload("logs", f"logs of {lines // 1000}k lines", lambda: ctx.variants(
        make, lamina_verbs=("import", "run", "wait", "logs"), timeout=60), target=0.5, stateless=True,
        runs=3 if ctx.quick else 8, budget_s=120)


def w_read(ctx: Ctx, name: str, title: str, args: tuple[str, ...]) -> Workload:
    """A read verb whose time is mostly the CLI's start-up (issue 9's targets: <= docker).
    lamina's store holds the bench images; docker's lists whatever its daemon has."""
    def make(tool, env, vname):
        return dict(setup=lambda: ctx.bases.ensure("small", tool), command=lambda i: tool.cmd(*args))

    return Workload(name, title, lambda: ctx.variants(make, lamina_verbs=("import", args[0]), timeout=60),
                    target=1.0, runs=3 if ctx.quick else 8, warmup=0 if ctx.quick else 1, budget_s=120,
                    stateless=True)


def w_startup_rows(ctx: Ctx, selected: set[str]) -> list[Workload]:
    """images, ps -a, inspect IMAGE and diff of a 100-change container: start-up bound."""
    out = []
    if "images" in selected:
        out.append(w_read(ctx, "images", "images", ("images",)))
    if "ps" in selected:
        out.append(w_read(ctx, "ps", "ps -a", ("ps", "-a")))
    if "inspect" in selected:
        out.append(w_read(ctx, "inspect", "inspect IMAGE (the busybox base)", ("inspect", Bases.ref("small"))))
    if "diff-100" in selected:
        wl = w_changes(ctx, "diff", 100, name="diff-100", target=1.0)
        wl.runs, wl.warmup = (3, 0) if ctx.quick else (8, 1)
        out.append(wl)
    return out


class _ApiService:
    """lamina's Engine API service on the bench store (issue 13), for the docker CLI to
    talk to; its idle RSS is measured once it has answered (issue: <= 40 MB)."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.proc = None
        self.dir = Path(f"/run/lamina-bench-api-{os.getpid()}")
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.dir}/docker.sock")
        self.idle_rss_kb: Optional[int] = None

    def start(self) -> None:
        self.ctx.bases.ensure("small", self.ctx.lamina)
        self.dir.mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(self.ctx.lamina.cmd("system", "service", "--socket", str(self.dir / "docker.sock"),
                                                         "--timeout", "0"), stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not (self.dir / "docker.sock").exists() and time.time() < deadline:
            time.sleep(0.05)
        sh([self.ctx.docker.bin or "docker", "version"], env=self.env, timeout=60)  # answered once: warm
        time.sleep(1)
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                self.idle_rss_kb = int(line.split()[1])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def w_api(ctx: Ctx, name: str, args: tuple[str, ...], *, target: float = 1.0) -> Workload:
    """The same docker CLI command through lamina's Engine API service and through dockerd
    (issue 13: `docker ps` through lamina <= 1.0x dockerd)."""
    service = _ApiService(ctx)
    wl = Workload(name, f"docker {' '.join(args)} through the Engine API", lambda: [], target=target,
                  runs=3 if ctx.quick else 10, warmup=1, budget_s=120, stateless=True)

    def variants() -> list[Variant]:
        docker_bin = ctx.docker.bin or "docker"

        def setup():
            service.start()
            wl.info["lamina_service_idle_rss_kb"] = service.idle_rss_kb

        return [Variant("lamina", command=lambda i: [docker_bin, *args], env=service.env,
                        setup=setup, teardown=service.stop, skip=ctx.docker.reason or ctx.lamina.missing("import"),
                        timeout=60),
                # the same client invocation, DOCKER_HOST naming dockerd's socket: the variable alone
                # changes the CLI's start-up (its context store is skipped), so both rows set it
                Variant("docker", command=lambda i: [docker_bin, *args], skip=ctx.docker.reason, timeout=60,
                        env=dict(os.environ, DOCKER_HOST=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")),
                        setup=lambda: ctx.bases.ensure("small", ctx.docker))]  # api-run runs it

    wl.variants = variants
    return wl


def _build_dir(ctx: Ctx, name: str, dockerfile: str) -> Path:
    d = ctx.workdir / "contexts" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "Dockerfile").write_text(dockerfile)
    return d


def w_build(ctx: Ctx, steps: int, *, cached: bool = False, name: Optional[str] = None,
            group: str = "main") -> Workload:
    base = Bases.ref("small")
    repo = f"{PREFIX}/build{steps}{'-cached' if cached else ''}"
    dockerfile = f"FROM {base}\n" + "".join(f"RUN echo {i} > /f{i}\n" for i in range(1, steps + 1))
    d = _build_dir(ctx, f"build-{steps}{'-cached' if cached else ''}", dockerfile)

    def make(tool, env, vname):
        tag = f"{repo}:{vname}"  # one tag per builder: removing one never drops another's cache
        args = ["build", *([] if cached else ["--no-cache"]), "-t", tag, str(d)]

        def setup():
            ctx.bases.ensure("small", tool)
            tool.rmi(tag)
            if cached:  # the first build fills the cache: untimed
                tool.run(*args, env=env, timeout=600)
        return dict(setup=setup, command=lambda i: tool.cmd(*args),
                    cleanup=None if cached else (lambda i: tool.rmi(tag)),
                    teardown=lambda: tool.rmi(tag),
                    check=lambda i: expect(tool, tag, f"cat /f1 /f{steps}", f"1\n{steps}"))

    if cached:
        title, ref, target, runs = f"build, {steps} RUN steps, fully cached", "docker", 0.75, 5
    else:
        title, ref, target, runs = f"build, {steps} RUN steps, no cache", "docker_buildkit", 0.35, 3
    if group != "main":
        target, runs = None, 1
    wl = Workload(name or ("build-cached" if cached else "build"), title,
                  lambda: ctx.variants(make, lamina_verbs=("import", "build"), builders=True,
                                       podman=True, timeout=600),
                  reference=ref, target=target, runs=1 if ctx.quick else runs,
                  warmup=0 if (ctx.quick or group != "main") else 1, budget_s=420, group=group,
                  x=steps, metric="build", stateless=cached)
    return wl


def w_copy(ctx: Ctx) -> Workload:
    total, count = ctx.sizes["copy"]
    state: dict = {}

    def context() -> Path:
        if "dir" not in state:
            from env import copy_context
            state["dir"] = copy_context(f"copy-context-{human(total)}-{count}", Bases.ref("small"),
                                        data_bytes=total, data_count=count)
        return state["dir"]

    def make(tool, env, vname):
        tag = f"{PREFIX}/copy:{vname}"

        def setup():
            ctx.bases.ensure("small", tool)
            context()
        return dict(setup=setup,
                    command=lambda i: tool.cmd("build", "--no-cache", "-t", tag, str(context())),
                    cleanup=lambda i: tool.rmi(tag), teardown=lambda: tool.rmi(tag),
                    check=lambda i: expect(tool, tag, "find /ctx -type f | wc -l", str(count)))

    def variants():
        # The classic builder removes its step container (the 20,000 files) inside its timed
        # run: it goes last in a round, so the next round's settle covers what it freed.
        vs = ctx.variants(make, lamina_verbs=("import", "build"), builders=True, timeout=600)
        return sorted(vs, key=lambda v: v.name == "docker")

    return Workload("copy", f"build COPY of {total / 1e6:.0f} MB in {count:,} files", variants,
                    reference="docker_buildkit", target=0.4, runs=1 if ctx.quick else 2,
                    warmup=0 if ctx.quick else 1, budget_s=900, settle=not ctx.quick)


def w_changes(ctx: Ctx, verb: str, n: int, *, base: str = "small", name: Optional[str] = None,
              group: str = "main", target: Optional[float] = None) -> Workload:
    """diff or commit of a container that added n files (plus one changed, one deleted)."""
    name = name or verb
    script = changes_script(n, per_dir=100 if n <= 5000 else 1000)
    info: dict = {"changes": {}}
    ctx.users[(base, n)] = ctx.users.get((base, n), 0) + 1  # diff and commit share the container
    cname = ctx.container_name(base, n)

    def make(tool, env, vname):
        def setup():
            ctx.changed_container(tool, base, n, script)
            if verb == "diff":  # how many changes the tool reports (also reads the tree once)
                out = tool.run("diff", cname, timeout=600).stdout
                info["changes"][tool.name] = len(out.splitlines())

        def teardown():
            ctx.release(tool, base, n)
        if verb == "diff":
            return dict(setup=setup, command=lambda i: tool.cmd("diff", cname), teardown=teardown)
        img = f"{PREFIX}/{safe(name)}"
        return dict(setup=setup, command=lambda i: tool.cmd("commit", cname, f"{img}:{i}"),
                    cleanup=lambda i: tool.rmi(f"{img}:{i}"), teardown=teardown,
                    check=lambda i: expect(tool, f"{img}:{i}", "find /bench -type f | wc -l; test ! -e /bin/vi && echo gone",
                                           f"{n}\ngone"))

    light = verb == "diff"
    main = group == "main"
    runs = 1 if ctx.quick else ((5 if light else 3) if main else (3 if light else 2))
    base_label = "busybox base" if base == "small" else f"{size_label(ctx.sizes[base][0])} base"
    wl = Workload(name, f"{verb} of a container with {n:,} new files ({base_label})",
                  lambda: ctx.variants(make, lamina_verbs=("import", "run", verb), timeout=900),
                  target=target, runs=runs, warmup=0 if (ctx.quick or not main) else 1,
                  budget_s=600, group=group, x=n, metric=verb, info=info, stateless=(verb == "diff" and main))
    wl.info["base"] = base
    return wl


def _fresh_tar(ctx: Ctx, i: int) -> Path:
    """The big image's tarball plus a file naming run i: a layer no tool has compressed before."""
    import shutil
    import tarfile
    out = ctx.workdir / f"push-{i}.tar"
    if not out.exists():
        shutil.copyfile(ctx.bases.tar("big"), out)
        with tarfile.open(out, "a") as tf:
            ti = tarfile.TarInfo("push-run")
            data = f"push run {i} of {ctx.workdir.name}\n".encode()
            ti.size, ti.mtime = len(data), 1700000000
            import io
            tf.addfile(ti, io.BytesIO(data))
    return out


def w_push(ctx: Ctx, *, repeat: bool = False) -> Workload:
    """push to an empty registry. First push (default): each run pushes a freshly imported
    image (so compression is part of it for every tool); repeat: the same image every run."""
    big = Bases.ref("big")

    def reg(i=None):
        return ctx.registry().ref(f"{PREFIX}/big:{'again' if i is None else f'run{i}'}")

    def make(tool, env, vname):
        if repeat:
            def setup():
                ctx.bases.ensure("big", tool)
                tool.run("tag", big, reg(), timeout=60)
            return dict(setup=setup, prepare=lambda i: ctx.registry().reset(),
                        command=lambda i: tool.cmd("push", reg()),
                        teardown=lambda: tool.rmi(reg(), force=False))

        def prepare(i):
            ctx.registry().reset()
            tool.rmi(reg(i))
            tool.import_tar(_fresh_tar(ctx, i), reg(i))
        return dict(prepare=prepare, command=lambda i: tool.cmd("push", reg(i)),
                    cleanup=lambda i: tool.rmi(reg(i)), check=lambda i: registry_has(ctx, reg(i)))

    def teardown():
        for p in ctx.workdir.glob("push-*.tar"):
            p.unlink()

    total = ctx.sizes["big"][0]
    if repeat:
        return Workload("push-again", f"push of the same {total / 1e6:.0f} MB image again, to an empty registry",
                        lambda: ctx.variants(make, lamina_verbs=("import", "tag", "push"), timeout=600),
                        runs=1 if ctx.quick else 2, budget_s=400)
    return Workload("push", f"first push of a freshly imported {total / 1e6:.0f} MB image to a loopback registry",
                    lambda: ctx.variants(make, lamina_verbs=("import", "push"), timeout=600), teardown=teardown,
                    target=0.4, runs=1 if ctx.quick else 3, budget_s=600)


def _seed_tool(ctx: Ctx, *verbs: str) -> Tool:
    """The tool that makes shared input (Docker when it runs, else lamina)."""
    if ctx.docker.reason is None:
        return ctx.docker
    if ctx.lamina.missing("import", *verbs) is None:
        return ctx.lamina
    raise CmdError(f"neither Docker nor lamina can {'/'.join(verbs)} here")


def w_pull(ctx: Ctx) -> Workload:
    big = Bases.ref("big")

    def reg():
        return ctx.registry().ref(f"{PREFIX}/big:latest")

    def setup():
        tool = _seed_tool(ctx, "tag", "push")
        ctx.registry().reset()
        ctx.bases.ensure("big", tool)
        tool.run("tag", big, reg(), timeout=60)
        log(f"  {tool.name}: push {reg()} (seeds the registry for the pulls)")
        tool.run("push", reg(), timeout=900)
        tool.rmi(reg(), force=False)

    def make(tool, env, vname):
        def teardown():  # back to the state before: the image under its local name only
            if tool.image_exists(reg()):
                tool.run("tag", reg(), big, timeout=60, check=False)
                tool.rmi(reg(), force=False)
        return dict(prepare=lambda i: tool.rmi(reg(), big), command=lambda i: tool.cmd("pull", reg()),
                    teardown=teardown, check=lambda i: expect(tool, reg(), "test -s /data/d0000/f000000",
                                                              None))

    total = ctx.sizes["big"][0]
    return Workload("pull", f"pull of a {total / 1e6:.0f} MB image from a loopback registry",
                    lambda: ctx.variants(make, lamina_verbs=("pull",), timeout=600), setup=setup,
                    target=0.5, runs=1 if ctx.quick else 3, warmup=0, budget_s=900, settle=not ctx.quick)


def w_save(ctx: Ctx) -> Workload:
    big = Bases.ref("big")

    def make(tool, env, vname):
        out = ctx.workdir / f"save-{tool.name}.tar"
        return dict(setup=lambda: ctx.bases.ensure("big", tool),
                    command=lambda i: tool.cmd("save", "-o", str(out), big),
                    cleanup=lambda i: out.unlink(missing_ok=True),
                    check=lambda i: at_least(out, int(ctx.sizes["big"][0] * 0.9)))

    total = ctx.sizes["big"][0]
    return Workload("save", f"save of the {total / 1e6:.0f} MB image to a tar file",
                    lambda: ctx.variants(make, lamina_verbs=("import", "save"), timeout=600),
                    runs=1 if ctx.quick else 3, warmup=0 if ctx.quick else 1, budget_s=400)


def w_load(ctx: Ctx) -> Workload:
    big = Bases.ref("big")
    archive = ctx.workdir / "load-input.tar"

    def setup():  # one archive (docker save's, when Docker runs) loaded by every tool
        tool = _seed_tool(ctx, "save")
        ctx.bases.ensure("big", tool)
        tool.run("save", "-o", str(archive), big, timeout=900)

    def make(tool, env, vname):
        return dict(prepare=lambda i: tool.rmi(big), command=lambda i: tool.cmd("load", "-i", str(archive)),
                    teardown=lambda: None, check=lambda i: expect(tool, big, "test -s /data/d0000/f000000", None))

    total = ctx.sizes["big"][0]
    return Workload("load", f"load of the {total / 1e6:.0f} MB image from a docker-save tar",
                    lambda: ctx.variants(make, lamina_verbs=("load",), timeout=600), setup=setup,
                    target=0.6, runs=1 if ctx.quick else 3, warmup=0, budget_s=900, settle=not ctx.quick)


def w_apt(ctx: Ctx) -> Workload:
    base = Bases.ref("debian")
    d = _build_dir(ctx, "apt", f"FROM {base}\nRUN apt-get update && apt-get install -y git\n")

    def make(tool, env, vname):
        tag = f"{PREFIX}/apt-git:{vname}"
        net = ["--network", "host"] if isinstance(tool, Docker) else []
        return dict(setup=lambda: ctx.bases.ensure("debian", tool),
                    command=lambda i: tool.cmd("build", "--no-cache", *net, "-t", tag, str(d)),
                    cleanup=lambda i: tool.rmi(tag), teardown=lambda: tool.rmi(tag))

    return Workload("apt", "build: RUN apt-get update && apt-get install -y git (Debian base, network)",
                    lambda: ctx.variants(make, lamina_verbs=("import", "build"), builders=True, timeout=900),
                    reference="docker_buildkit", runs=1, warmup=0, budget_s=1200)


# --------------------------------------------------------------------------- selection

MAIN = ["run", "run-p", "run-d", "stop", "exec", "logs", "images", "ps", "inspect", "api-images", "api-ps", "api-run", "diff-100", "build", "build-cached", "copy", "diff", "commit", "push", "push-again", "pull", "save", "load",
        "apt"]
GROUPS = ["growth-changes", "growth-base", "growth-steps"]


def all_workloads(ctx: Ctx, selected: set[str]) -> list[Workload]:
    """The workloads to run, in order, for the selected names (workloads and growth groups)."""
    s = ctx.sizes
    out: list[Workload] = []
    if "run" in selected:
        out.append(w_run(ctx))
    if "run-p" in selected:
        out.append(w_run_publish(ctx))
    if "run-d" in selected:
        out.append(w_run_detached(ctx))
    if "stop" in selected:
        out.append(w_stop(ctx))
    if "exec" in selected:
        out.append(w_exec(ctx))
    if "logs" in selected:
        out.append(w_logs(ctx))
    out += w_startup_rows(ctx, selected)
    for name, args, target in (("api-images", ("images",), 1.0), ("api-ps", ("ps", "-a"), 1.0),
                               ("api-run", ("run", "--rm", Bases.ref("small"), "true"), 0.5)):
        if name in selected:
            out.append(w_api(ctx, name, args, target=target))
    if "build" in selected:
        out.append(w_build(ctx, s["build_steps"]))
    if "build-cached" in selected:
        out.append(w_build(ctx, s["build_steps"], cached=True))
    if "copy" in selected:
        out.append(w_copy(ctx))
    if "diff" in selected:
        out.append(w_changes(ctx, "diff", s["changes"], target=0.3))
    if "commit" in selected:
        out.append(w_changes(ctx, "commit", s["changes"], target=0.5))
    for name, fn in (("push", w_push), ("push-again", lambda c: w_push(c, repeat=True)), ("pull", w_pull), ("save", w_save), ("load", w_load), ("apt", w_apt)):
        if name in selected:
            out.append(fn(ctx))
    curve_points: list[int] = []
    if "growth-changes" in selected:
        curve_points = list(s["curve_changes"])
    if "growth-base" in selected and s["curve_base_changes"] not in curve_points:
        curve_points.append(s["curve_base_changes"])
    for n in sorted(curve_points):
        for verb in ("diff", "commit"):
            out.append(w_changes(ctx, verb, n, name=f"{verb}@{human(n)}-changes", group="growth-changes"))
    if "growth-base" in selected:
        n = s["curve_base_changes"]
        label = human(s["largebase"][0])
        for verb in ("diff", "commit"):
            out.append(w_changes(ctx, verb, n, base="largebase", name=f"{verb}@{label}-base",
                                 group="growth-base"))
    if "growth-steps" in selected:
        for steps in s["curve_steps"]:
            if steps == s["build_steps"] and "build" in selected:
                continue  # the main build workload is this point
            out.append(w_build(ctx, steps, name=f"build@{steps}-steps", group="growth-steps"))
    return out
