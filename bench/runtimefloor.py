"""The runtime's floor: the OCI runtime alone, run with the config.json lamina wrote for a container.

`run --rm` and `run -d` spend most of their time in the runtime (for runc: its Go start-up
twice, `runc init`, compiling docker's default seccomp profile, the cgroup v1 set-up).  These
variants time the runtime by itself on lamina's own bundle, so the table shows how much of
docker's time the runtime alone takes, and thus how close to a ratio target any runner on
this host can get.  `runtime_alone` is the runtime lamina uses here (crun where it works,
else runc: src/lamina/runtime/oci.py select_runtime); `runc_alone` is runc, shown too when
lamina's runtime is another one.  The bundle is the one of a detached lamina container run
by that runtime (same mounts, namespaces, seccomp, capabilities, rootfs and network
namespace), with its own process and cgroup per run; the runtime keeps its state in a
directory of its own.  runc and crun share the command line used here (run, run --detach,
exec, delete --force).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from env import PREFIX, CmdError, Lamina, sh
from timing import Variant

_RUNTIMES: dict[str, tuple[str, str]] = {}


def lamina_runtime(lamina: Lamina) -> tuple[str, str]:
    """(name, path) of the runtime lamina uses with this store, as `lamina info` says
    (LAMINA_RUNTIME in the environment counts): asked once per store."""
    key = str(lamina.root)
    if key not in _RUNTIMES:
        p = lamina.run("info", "--format", "{{.DefaultRuntime}}\t{{json .Runtimes}}", timeout=60)
        name, runtimes = p.stdout.decode().strip().split("\t", 1)
        _RUNTIMES[key] = (name, json.loads(runtimes)[name]["path"])
    return _RUNTIMES[key]


def runtime_name(lamina: Lamina) -> Optional[str]:
    """"crun" or "runc" (None when lamina cannot say): for the notes of the table."""
    try:
        return lamina_runtime(lamina)[0]
    except (CmdError, ValueError, KeyError, TypeError):
        return None


def _runtimes(lamina: Lamina) -> list[tuple[str, str, str, Optional[str]]]:
    """[(variant, runtime name, its path, skip)]: lamina's runtime, then runc when lamina's is another."""
    try:
        name, path = lamina_runtime(lamina)
    except (CmdError, ValueError, KeyError, TypeError) as e:
        return [("runtime_alone", "", "", f"lamina's runtime unknown: {e}")]
    out = [("runtime_alone", name, path, None)]
    if name != "runc":
        runc = shutil.which("runc")
        out.append(("runc_alone", "runc", runc or "runc", None if runc else "runc is not installed"))
    return out


class Floor:
    """A runtime on a copy of a running lamina container's bundle (a container that runtime runs)."""

    def __init__(self, lamina: Lamina, workdir: Path, ref: str, name: str, runtime: str, label: str, ensure):
        self.lamina, self.ref, self.runtime, self.ensure = lamina, ref, runtime, ensure
        self.tag = f"{name}-{label}"
        self.name = f"{PREFIX}-floor-{self.tag}"
        self.dir = workdir / f"floor-{self.tag}"
        self.cgroup = f"{PREFIX}-floor-{self.tag}"
        self.config: dict = {}

    def setup(self) -> None:
        self.ensure()  # the base image in lamina's store
        self.lamina.run("rm", "-f", self.name, timeout=60, check=False)
        # lamina's config as every start but a store's first has it: crun is then handed the
        # profile's compiled filter (runtime/seccompcache.py), which this run makes sure of
        self.lamina.run("--runtime", self.runtime, "run", "--rm", self.ref, "true", timeout=60)
        self.lamina.run("--runtime", self.runtime, "run", "-d", "--name", self.name, self.ref, "sleep", "3600",
                        timeout=60)
        cid = self.lamina.run("inspect", "-f", "{{.Id}}", self.name, timeout=60).stdout.decode().strip()
        source = Path(self.lamina.root) / "containers" / cid / "bundle" / "config.json"
        self.config = json.loads(source.read_text())
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "state").mkdir(parents=True)

    def bundle(self, i: int, args: list[str]) -> str:
        """A bundle for run i: lamina's config with `args` and a cgroup of its own."""
        config = json.loads(json.dumps(self.config))
        config["process"]["args"] = args
        config["process"]["terminal"] = False
        config["linux"]["cgroupsPath"] = f"/{self.cgroup}/{i}"
        path = self.dir / f"b{i}"
        path.mkdir(exist_ok=True)
        (path / "config.json").write_text(json.dumps(config))
        return str(path)

    def base(self) -> list[str]:
        return [self.runtime, "--root", str(self.dir / "state")]

    def remove(self, i: int) -> None:
        sh([*self.base(), "delete", "--force", f"floor-{i}"], check=False, timeout=60)
        shutil.rmtree(self.dir / f"b{i}", ignore_errors=True)
        cgroups = Path("/sys/fs/cgroup")
        for controller in cgroups.iterdir() if cgroups.is_dir() else ():
            for path in (controller / self.cgroup / str(i), controller / self.cgroup):
                try:
                    path.rmdir()  # the runtime removes its own; a killed run may leave one
                except OSError:
                    pass

    def teardown(self) -> None:
        self.lamina.run("rm", "-f", self.name, timeout=60, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def foreground(lamina: Lamina, workdir: Path, ref: str, ensure, skip=None) -> list[Variant]:
    """`RUNTIME run` of `true` (create, start, wait, delete: what a foreground run asks of it)."""
    out = []
    for vname, name, runtime, why in _runtimes(lamina):
        floor = Floor(lamina, workdir, ref, name, runtime, "run", ensure)
        out.append(Variant(vname, skip=skip or why, setup=floor.setup, teardown=floor.teardown, timeout=60,
                           prepare=lambda i, f=floor: f.bundle(i, ["true"]),
                           command=lambda i, f=floor: [*f.base(), "run", "--bundle", str(f.dir / f"b{i}"), f"floor-{i}"],
                           cleanup=floor.remove))
    return out


def detached(lamina: Lamina, workdir: Path, ref: str, ensure, skip=None) -> list[Variant]:
    """`RUNTIME run --detach` of `sleep 100`, its stdio on /dev/null (a detached container holds
    the pipes it is given: nothing may wait for their end)."""
    out = []
    for vname, name, runtime, why in _runtimes(lamina):
        floor = Floor(lamina, workdir, ref, name, runtime, "detach", ensure)

        def command(i: int, f=floor) -> list[str]:
            argv = [*f.base(), "run", "--detach", "--bundle", str(f.dir / f"b{i}"), f"floor-{i}"]
            return ["sh", "-c", 'exec "$@" </dev/null >/dev/null 2>&1', "sh", *argv]

        out.append(Variant(vname, skip=skip or why, setup=floor.setup, teardown=floor.teardown, timeout=60,
                           prepare=lambda i, f=floor: f.bundle(i, ["sleep", "100"]), command=command,
                           cleanup=floor.remove))
    return out


def exec_true(lamina: Lamina, container: str, ref: str, ensure, skip=None) -> list[Variant]:
    """`RUNTIME exec CTR true` into a running lamina container (the process of its config.json
    with `true` for its arguments), as lamina's own exec asks the runtime: for lamina's runtime,
    into `container` (lamina's own exec variant's); for runc when lamina's runtime is another,
    into a container of its own that lamina starts with `--runtime runc`."""
    out = []
    for vname, name, runtime, why in _runtimes(lamina):
        target = container if vname == "runtime_alone" else f"{PREFIX}-floor-exec-runc"
        ids: list[str] = []

        def setup(runtime=runtime, target=target, ids=ids) -> None:
            if target != container:
                ensure()
                lamina.run("rm", "-f", target, timeout=60, check=False)
                lamina.run("--runtime", runtime, "run", "-d", "--name", target, ref, "sleep", "3600", timeout=60)
            ids[:] = [lamina.run("inspect", "-f", "{{.Id}}", target, timeout=60).stdout.decode().strip()]

        def teardown(target=target) -> None:
            if target != container:
                lamina.run("rm", "-f", target, timeout=60, check=False)

        state = Path(lamina.root) / "runtime" / name  # lamina's state root for that runtime
        out.append(Variant(vname, skip=skip or why, setup=setup, teardown=teardown, timeout=60,
                           command=lambda i, r=runtime, s=state, ids=ids: [r, "--root", str(s), "exec", ids[0], "true"]))
    return out
