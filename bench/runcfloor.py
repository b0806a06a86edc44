"""The runtime's floor: `runc` alone, run with the config.json lamina wrote for a container.

`run --rm` and `run -d` spend most of their time in runc (its Go start-up twice, `runc
init`, compiling docker's default seccomp profile, the cgroup v1 set-up).  This variant
times runc by itself on lamina's own bundle, so the table shows how much of docker's time
the runtime alone takes, and thus how close to a ratio target any runner on this host can
get.  The bundle is the one of a detached lamina container (same mounts, namespaces,
seccomp, capabilities, rootfs and network namespace), with its own process and cgroup per
run; runc keeps its state in a directory of its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from env import PREFIX, Lamina, sh
from timing import Variant


class RuncFloor:
    """runc on a copy of a running lamina container's bundle."""

    def __init__(self, lamina: Lamina, workdir: Path, ref: str, label: str, ensure):
        self.lamina, self.ref, self.ensure = lamina, ref, ensure
        self.name = f"{PREFIX}-runc-floor-{label}"
        self.dir = workdir / f"runc-floor-{label}"
        self.runc = shutil.which("runc") or "runc"
        self.config: dict = {}

    def setup(self) -> None:
        self.ensure()  # the base image in lamina's store
        self.lamina.run("rm", "-f", self.name, timeout=60, check=False)
        self.lamina.run("run", "-d", "--name", self.name, self.ref, "sleep", "3600", timeout=60)
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
        config["linux"]["cgroupsPath"] = f"/{PREFIX}-runc-floor/{i}"
        path = self.dir / f"b{i}"
        path.mkdir(exist_ok=True)
        (path / "config.json").write_text(json.dumps(config))
        return str(path)

    def base(self) -> list[str]:
        return [self.runc, "--root", str(self.dir / "state")]

    def remove(self, i: int) -> None:
        sh([*self.base(), "delete", "--force", f"floor-{i}"], check=False, timeout=60)
        shutil.rmtree(self.dir / f"b{i}", ignore_errors=True)
        cgroups = Path("/sys/fs/cgroup")
        for controller in cgroups.iterdir() if cgroups.is_dir() else ():
            for path in (controller / f"{PREFIX}-runc-floor" / str(i), controller / f"{PREFIX}-runc-floor"):
                try:
                    path.rmdir()  # runc removes its own; a killed run may leave one
                except OSError:
                    pass

    def teardown(self) -> None:
        self.lamina.run("rm", "-f", self.name, timeout=60, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def foreground(lamina: Lamina, workdir: Path, ref: str, ensure, skip=None) -> Variant:
    """`runc run` of `true` (create, start, wait, delete: what a foreground run asks of it)."""
    floor = RuncFloor(lamina, workdir, ref, "run", ensure)
    return Variant("runc_alone", skip=skip, setup=floor.setup, teardown=floor.teardown, timeout=60,
                   prepare=lambda i: floor.bundle(i, ["true"]),
                   command=lambda i: [*floor.base(), "run", "--bundle", str(floor.dir / f"b{i}"), f"floor-{i}"],
                   cleanup=floor.remove)


def detached(lamina: Lamina, workdir: Path, ref: str, ensure, skip=None) -> Variant:
    """`runc run --detach` of `sleep 100`, its stdio on /dev/null (a detached container holds
    the pipes it is given: nothing may wait for their end)."""
    floor = RuncFloor(lamina, workdir, ref, "detach", ensure)

    def command(i: int) -> list[str]:
        argv = [*floor.base(), "run", "--detach", "--bundle", str(floor.dir / f"b{i}"), f"floor-{i}"]
        return ["sh", "-c", 'exec "$@" </dev/null >/dev/null 2>&1', "sh", *argv]

    return Variant("runc_alone", skip=skip, setup=floor.setup, teardown=floor.teardown, timeout=60,
                   prepare=lambda i: floor.bundle(i, ["sleep", "100"]), command=command,
                   cleanup=floor.remove)


def exec_true(lamina: Lamina, container: str, skip=None) -> Variant:
    """`runc exec CTR true` into lamina's running container `container` (the process of its
    config.json with `true` for its arguments), as lamina's own exec asks runc."""
    runc = shutil.which("runc") or "runc"
    cid: list[str] = []

    def setup() -> None:
        cid[:] = [lamina.run("inspect", "-f", "{{.Id}}", container, timeout=60).stdout.decode().strip()]

    return Variant("runc_alone", skip=skip, setup=setup, timeout=60,
                   command=lambda i: [runc, "--root", str(Path(lamina.root) / "runtime" / "runc"), "exec", cid[0], "true"])
