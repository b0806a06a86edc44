"""config.json generation: Docker 20.10's defaults, our deliberate differences, validation."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lamina.errors import ContainerCommandNotExecutable, ContainerCommandNotFound, RuntimeFailure
from lamina.runtime.rootfs import UserIds, lookup_user
from lamina.runtime.spec import (
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    NOFILE,
    READONLY_PATHS,
    RunSpec,
    build_spec,
    check_command,
    container_env,
    write_bundle,
)
from lamina.runtime.specmounts import BindMount

DOCKER_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def spec(**kw) -> RunSpec:
    kw.setdefault("args", ("true",))
    kw.setdefault("rootfs", "/var/lib/lamina/containers/x/merged")
    return RunSpec(**kw)


def test_docker_default_capabilities_and_empty_inheritable() -> None:
    caps = build_spec(spec())["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14
    # CVE-2022-29162 / CVE-2022-24769: never grant inheritable or ambient capabilities.
    assert caps["inheritable"] == [] and caps["ambient"] == []


def test_non_root_gets_bounding_set_only() -> None:
    caps = build_spec(spec(user=UserIds(1000, 1000, (1000,), "/")))["process"]["capabilities"]
    assert caps["bounding"] == list(DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == caps["inheritable"] == caps["ambient"] == []
    root_other_group = build_spec(spec(user=UserIds(0, 50, (50,), "/")))["process"]["capabilities"]
    assert root_other_group["effective"] == list(DEFAULT_CAPABILITIES)


def test_capability_mask_is_dockers() -> None:
    bits = {
        "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
        "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
        "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
    }  # fmt: skip
    mask = sum(1 << bits[c] for c in DEFAULT_CAPABILITIES)
    assert f"{mask:016x}" == "00000000a80425fb"


def test_masked_and_readonly_paths() -> None:
    linux = build_spec(spec())["linux"]
    assert linux["maskedPaths"] == list(MASKED_PATHS)
    assert "/proc/kcore" in MASKED_PATHS and "/sys/firmware" in MASKED_PATHS
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    assert list(READONLY_PATHS) == linux["readonlyPaths"]


def test_default_mounts() -> None:
    mounts = {m["destination"]: m for m in build_spec(spec())["mounts"]}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert mounts["/dev"]["type"] == "tmpfs"
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert mounts["/proc"]["options"] == ["nosuid", "noexec", "nodev"]


def test_namespaces_by_network_mode() -> None:
    def types(cfg: dict) -> list[str]:
        return [n["type"] for n in cfg["linux"]["namespaces"]]

    none = build_spec(spec(network="none"))
    assert types(none) == ["mount", "network", "uts", "pid", "ipc"]
    assert none["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"
    host = build_spec(spec(network="host"))
    assert types(host) == ["mount", "uts", "pid", "ipc"]
    assert "sysctl" not in host["linux"]  # they would change the host's settings
    joined = build_spec(spec(network="/run/netns/x"))
    assert {"type": "network", "path": "/run/netns/x"} in joined["linux"]["namespaces"]
    with pytest.raises(RuntimeFailure, match="unsupported network mode"):
        build_spec(spec(network="bridge"))


def test_devices_allow_list() -> None:
    devices = build_spec(spec())["linux"]["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}
    allowed = {(d["major"], d["minor"]) for d in devices if d["allow"]}
    assert allowed == {(1, 3), (1, 5), (1, 8), (1, 9), (5, 0), (5, 1)}
    assert {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"} in devices


def test_no_new_privileges_false_and_no_oom_score() -> None:
    process = build_spec(spec())["process"]
    assert process["noNewPrivileges"] is False
    assert "oomScoreAdj" not in process  # lowering it needs CAP_SYS_RESOURCE


def test_rlimit_nofile_clamped_to_hard_limit() -> None:
    def nofile(hard: int | None) -> dict:
        (lim,) = build_spec(spec(), nofile_hard=hard)["process"]["rlimits"]
        assert lim["type"] == "RLIMIT_NOFILE"
        return lim

    assert nofile(20000) == {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000}
    assert nofile(4_000_000)["hard"] == NOFILE == 1048576
    assert nofile(resource.RLIM_INFINITY)["hard"] == NOFILE
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    current = nofile(None)
    if hard != resource.RLIM_INFINITY:
        assert current["hard"] <= hard and current["soft"] <= hard


def test_env_like_docker() -> None:
    assert container_env((), "h", False) == [DOCKER_PATH, "HOSTNAME=h"]
    assert container_env((), "h", True) == [DOCKER_PATH, "HOSTNAME=h", "TERM=xterm"]
    assert container_env(("PATH=/x", "FOO=bar"), "h", False) == ["PATH=/x", "HOSTNAME=h", "FOO=bar"]
    assert container_env(("TERM=dumb", "A=1", "A=2"), "h", True) == [DOCKER_PATH, "HOSTNAME=h", "TERM=dumb", "A=2"]
    assert container_env(("HOSTNAME",), "h", False) == [DOCKER_PATH]  # bare name unsets
    assert container_env(("EMPTY=",), "h", False) == [DOCKER_PATH, "HOSTNAME=h", "EMPTY="]


def test_user_and_process_fields() -> None:
    cfg = build_spec(spec(args=("sh", "-c", "id"), cwd="/tmp", user=UserIds(1000, 50, (50, 7), "/h"), hostname="box"))
    assert cfg["process"]["user"] == {"uid": 1000, "gid": 50, "additionalGids": [50, 7]}
    assert cfg["process"]["args"] == ["sh", "-c", "id"]
    assert cfg["process"]["cwd"] == "/tmp"
    assert cfg["hostname"] == "box"
    assert cfg["ociVersion"] == "1.0.2-dev"


def test_terminal_and_console_size() -> None:
    cfg = build_spec(spec(terminal=True, console_size=(33, 101)))
    assert cfg["process"]["terminal"] is True
    assert cfg["process"]["consoleSize"] == {"height": 33, "width": 101}
    assert "consoleSize" not in build_spec(spec(console_size=(33, 101)))["process"]


def test_bind_mounts_network_files_and_readonly_rootfs() -> None:
    cfg = build_spec(
        spec(
            readonly_rootfs=True,
            mounts=(BindMount("/host/a", "/a/b/c"), BindMount("/host/d", "/data", readonly=True)),
            hosts_file="/s/hosts",
            hostname_file="/s/hostname",
            resolv_conf_file="/s/resolv.conf",
        )
    )
    assert cfg["root"] == {"path": "/var/lib/lamina/containers/x/merged", "readonly": True}
    binds = [m for m in cfg["mounts"] if m["type"] == "bind"]
    # Docker's order: sorted by depth, parents first.
    assert [m["destination"] for m in binds] == ["/data", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/a/b/c"]
    opts = {m["destination"]: m["options"] for m in binds}
    assert opts["/data"] == ["rbind", "ro", "rprivate"]
    assert opts["/a/b/c"] == ["rbind", "rprivate"]
    assert opts["/etc/hosts"] == ["rbind", "ro", "rprivate"]  # read-only rootfs: network files too
    rw = build_spec(spec(hosts_file="/s/hosts"))
    assert [m["options"] for m in rw["mounts"] if m["destination"] == "/etc/hosts"] == [["rbind", "rprivate"]]


def test_user_mounts_replace_defaults() -> None:
    cfg = build_spec(spec(mounts=(BindMount("/h", "/etc/hosts"), BindMount("/shm", "/dev/shm")), hosts_file="/s/hosts"))
    hosts = [m for m in cfg["mounts"] if m["destination"] == "/etc/hosts"]
    assert [m["source"] for m in hosts] == ["/h"]
    assert [m["type"] for m in cfg["mounts"] if m["destination"] == "/dev/shm"] == ["bind"]
    dev = build_spec(spec(mounts=(BindMount("/hostdev", "/dev"),)))
    assert not [m for m in dev["mounts"] if m["destination"].startswith("/dev/")]


@pytest.mark.parametrize("cwd", ["/proc/self/fd/7", "/proc", "//proc/1/cwd", "/x/../proc/self/cwd", "/./proc/"])
def test_workdir_under_proc_refused(cwd: str) -> None:
    # CVE-2024-21626
    with pytest.raises(RuntimeFailure, match="under /proc"):
        build_spec(spec(cwd=cwd))


def test_relative_workdir_refused_like_docker() -> None:
    with pytest.raises(RuntimeFailure) as e:
        build_spec(spec(cwd="proc"))
    assert str(e.value) == "the working directory 'proc' is invalid, it needs to be an absolute path"
    assert e.value.exit_code == 125


@pytest.mark.parametrize(
    "bad",
    [
        {"args": ()},
        {"args": ("",)},
        {"args": ("a\0b",)},
        {"env": ("A=\0",)},
        {"mounts": (BindMount("/h", "rel"),)},
        {"mounts": (BindMount("/h", "/"),)},
        {"mounts": (BindMount("rel", "/x"),)},
        {"hostname": "h" * 65},
        {"rootfs": "relative"},
    ],
)
def test_invalid_specs_are_lamina_errors(bad: dict) -> None:
    with pytest.raises(RuntimeFailure):
        build_spec(spec(**bad))


def test_write_bundle(tmp_path: Path, busybox_rootfs: Path) -> None:
    s = spec(rootfs=str(busybox_rootfs), env=("A=1",), hostname="h")
    path = write_bundle(str(tmp_path / "bundle"), s)
    with open(path) as f:
        assert json.load(f) == json.loads(json.dumps(build_spec(s)))
    assert not os.path.exists(path + ".tmp")


def test_write_bundle_refuses_workdir_symlinked_into_proc(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    os.symlink("/proc/self/fd/7", rootfs / "work")
    with pytest.raises(RuntimeFailure, match="resolves into /proc"):
        write_bundle(str(tmp_path / "bundle"), spec(rootfs=str(rootfs), cwd="/work"))


def test_check_command_uses_the_final_path_and_cwd(busybox_rootfs: Path) -> None:
    assert check_command(spec(args=("sh",), rootfs=str(busybox_rootfs))) == "/bin/sh"
    with pytest.raises(ContainerCommandNotFound):
        check_command(spec(args=("sh",), rootfs=str(busybox_rootfs), env=("PATH=/usr/bin",)))
    with pytest.raises(ContainerCommandNotFound, match='exec: "git": executable file not found in \\$PATH'):
        check_command(spec(args=("git",), rootfs=str(busybox_rootfs)))
    with pytest.raises(ContainerCommandNotExecutable):
        check_command(spec(args=("./passwd",), rootfs=str(busybox_rootfs), cwd="/etc"))


def test_build_spec_is_cheap() -> None:
    s = spec(env=tuple(f"K{i}=v" for i in range(50)), mounts=(BindMount("/a", "/b"),))
    t = time.perf_counter()
    for _ in range(200):
        build_spec(s, nofile_hard=1024)
    assert (time.perf_counter() - t) / 200 < 0.002


# --------------------------------------------------------------------------- against the real docker


def _docker_ok() -> bool:
    if shutil.which("docker") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def docker_image(busybox_tar: Path) -> str:
    if not _docker_ok():
        pytest.skip("SKIPPED LOUDLY: no usable docker engine to compare with")
    name = "lamina-test-runtime:busybox"
    subprocess.run(["docker", "import", str(busybox_tar), name], check=True, capture_output=True)
    return name


def _docker_config(image: str, *args: str) -> dict:
    cid = subprocess.run(["docker", "run", "-d", *args, image, "sleep", "30"], check=True, capture_output=True, text=True).stdout.strip()
    try:
        path = f"/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/{cid}/config.json"
        for _ in range(50):
            if os.path.exists(path):
                break
            time.sleep(0.1)
        with open(path) as f:
            return json.load(f)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


@pytest.mark.docker
@pytest.mark.parametrize(
    ("docker_args", "kw"),
    [
        (["--network", "none", "--hostname", "hh", "-e", "FOO=bar"], {"network": "none", "hostname": "hh", "env": ("FOO=bar",)}),
        (
            ["--network", "none", "--hostname", "hh", "-t", "-u", "app", "-w", "/tmp", "--read-only"],
            {"network": "none", "hostname": "hh", "terminal": True, "cwd": "/tmp", "readonly_rootfs": True, "user": "app"},
        ),
        (["--network", "host", "--hostname", "hh"], {"network": "host", "hostname": "hh"}),
    ],
)
def test_matches_docker_config(docker_image: str, busybox_rootfs: Path, docker_args: list, kw: dict) -> None:
    theirs = _docker_config(docker_image, *docker_args)
    if "user" in kw:
        kw["user"] = lookup_user(str(busybox_rootfs), kw["user"])
    ours = build_spec(
        spec(args=("sleep", "30"), rootfs=str(busybox_rootfs), hosts_file="/h", hostname_file="/hn", resolv_conf_file="/r", **kw)
    )
    tp, op = theirs["process"], ours["process"]
    for key in ("args", "env", "cwd", "user"):
        assert op[key] == tp[key], key
    assert op.get("terminal", False) == tp.get("terminal", False)
    for key in ("bounding", "effective", "permitted"):
        assert op["capabilities"][key] == tp["capabilities"].get(key, [])
    assert ours["hostname"] == theirs["hostname"]
    assert ours["root"]["readonly"] == theirs["root"].get("readonly", False)

    def mounts(cfg: dict) -> list:
        return [(m["destination"], m["type"], m["source"] if m["type"] != "bind" else "", m["options"]) for m in cfg["mounts"]]

    assert mounts(ours) == mounts(theirs)
    tl, ol = theirs["linux"], ours["linux"]
    for key in ("maskedPaths", "readonlyPaths"):
        assert ol[key] == tl[key]
    assert ol["resources"]["devices"] == tl["resources"]["devices"]
    # Docker joins the host namespace by path; we simply do not create one.
    their_ns = [n["type"] for n in tl["namespaces"] if not n.get("path")]
    assert [n["type"] for n in ol["namespaces"]] == their_ns
    assert ol.get("sysctl", {}) == tl.get("sysctl", {})
