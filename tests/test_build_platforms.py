"""Multi-platform builds (issue 15): `build --platform`, the OCI index, emulated RUN steps.

The foreign base is an arm64 busybox rootfs made from Debian's `busybox-static`
arm64 .deb (fetched once with `apt-get download` through a private apt state that
lists the arm64 archive: the system's apt configuration is left alone; cached
under /var/tmp), imported with `import --platform linux/arm64`.  That is seconds,
where an mmdebstrap arm64 bookworm takes minutes under qemu.  Its binaries run
through Debian's qemu-user-static, registered with binfmt_misc on first use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_busybox_rootfs, make_rootfs_tar, requires_root
from registry_fixtures import registry  # noqa: F401  (fixture)

LAMINA = [sys.executable, "-m", "lamina"]
ARM64_CACHE = Path(os.environ.get("LAMINA_ARM64_CACHE", "/var/tmp/lamina-test-arm64"))
QEMU = "/usr/bin/qemu-aarch64-static"

pytestmark = [requires_root, pytest.mark.skipif(not os.path.exists(QEMU),
                                                reason="SKIPPED LOUDLY: qemu-user-static is not installed "
                                                       "(scripts/setup installs it)")]

DOCKERFILE = """\
FROM --platform=$BUILDPLATFORM bb-amd64 AS tool
ARG TARGETARCH
RUN echo "tool $(uname -m) $TARGETARCH" > /tool.txt
FROM bb-${TARGETARCH}
ARG TARGETARCH
ARG TARGETPLATFORM
ARG TARGETOS
ARG TARGETVARIANT
ARG BUILDPLATFORM
ARG BUILDARCH
COPY --from=tool /tool.txt /tool.txt
RUN echo "$TARGETARCH $TARGETPLATFORM $TARGETOS [$TARGETVARIANT] $BUILDPLATFORM $BUILDARCH $(uname -m)" > /arch.txt
CMD ["cat", "/arch.txt", "/tool.txt"]
"""


def lamina(root, *args, check=True):
    r = subprocess.run(LAMINA + ["--root", str(root), *args], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"lamina {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def _arm64_busybox() -> Path:
    """Debian's static busybox for arm64, downloaded once (apt's own client, arm64 lists)."""
    target = ARM64_CACHE / "busybox"
    if target.exists():
        return target
    work = ARM64_CACHE / "apt"
    shutil.rmtree(work, ignore_errors=True)
    (work / "lists/partial").mkdir(parents=True)
    (work / "cache/archives/partial").mkdir(parents=True)
    opts = ["-o", "APT::Architectures::=arm64", "-o", "APT::Architecture=arm64",
            "-o", f"Dir::State::Lists={work}/lists", "-o", f"Dir::Cache={work}/cache",
            "-o", "Dir::State::status=/dev/null"]
    try:
        subprocess.run(["apt-get", *opts, "update", "-qq"], check=True, capture_output=True, timeout=300)
        subprocess.run(["apt-get", *opts, "download", "busybox-static"], cwd=work, check=True,
                       capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"SKIPPED LOUDLY: cannot download busybox-static:arm64 with apt: {e}")
    deb = next(work.glob("busybox-static_*_arm64.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
    shutil.copy2(work / "x/bin/busybox", target.with_suffix(".part"))
    os.replace(target.with_suffix(".part"), target)
    shutil.rmtree(work)
    return target


def _arm64_rootfs(dest: Path) -> Path:
    """make_busybox_rootfs's layout with the arm64 binary (its applet list is the host's copy's: the same)."""
    make_busybox_rootfs(dest)
    shutil.copy2(_arm64_busybox(), dest / "bin/busybox")
    return dest


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar):
    """A store with bb-amd64 (imported as is) and bb-arm64 (`import --platform linux/arm64`)."""
    work = tmp_path_factory.mktemp("platforms")
    arm_tar = make_rootfs_tar(_arm64_rootfs(work / "arm64-rootfs"), work / "arm64.tar")
    root = work / "root"
    lamina(root, "import", str(busybox_tar), "bb-amd64")
    lamina(root, "import", "--platform", "linux/arm64", str(arm_tar), "bb-arm64")
    return root


def _config(root, name):
    return json.loads(lamina(root, "inspect", "--type", "image", name).stdout)[0]


def test_import_platform_and_run_through_emulation(store):
    info = _config(store, "bb-arm64")
    assert (info["Architecture"], info["Os"]) == ("arm64", "linux")
    r = lamina(store, "run", "--rm", "--platform", "linux/arm64", "bb-arm64", "uname", "-m")
    assert r.stdout.strip() == "aarch64"
    assert "x86_64" not in r.stdout
    # binfmt_misc has the entry, with F: the interpreter is opened at registration, so it
    # works inside the container's mount namespace (which has no /usr/bin/qemu-*)
    with open("/proc/sys/fs/binfmt_misc/qemu-aarch64") as f:
        text = f.read()
    assert text.startswith("enabled") and "F" in next(ln for ln in text.splitlines() if ln.startswith("flags"))


def test_foreign_image_without_platform_warns_as_dockerd(store):
    # docker 20.10, same image (loaded from `lamina save`): the create warning, then the emulated output
    r = lamina(store, "run", "--rm", "bb-arm64", "uname", "-m")
    assert r.stdout == "aarch64\n"
    assert ("WARNING: The requested image's platform (linux/arm64) does not match the detected host platform "
            "(linux/amd64) and no specific platform was requested\n") in r.stderr
    assert "requested image's platform" not in lamina(store, "run", "--rm", "bb-amd64", "true").stderr


def test_missing_registration_is_made_and_said(store):
    entry = "/proc/sys/fs/binfmt_misc/qemu-aarch64"
    if os.path.exists(entry):
        with open(entry, "w") as f:  # unregister: what a fresh boot without binfmt-support has
            f.write("-1")
    assert not os.path.exists(entry)
    r = lamina(store, "run", "--rm", "--platform", "linux/arm64", "bb-arm64", "uname", "-m")
    assert r.stdout == "aarch64\n"
    assert r.stderr.count("registering qemu-aarch64 with binfmt_misc") == 1
    with open(entry) as f:
        flags = next(ln for ln in f.read().splitlines() if ln.startswith("flags"))
    assert "F" in flags
    assert "registering" not in lamina(store, "run", "--rm", "--platform", "linux/arm64", "bb-arm64", "true").stderr


def test_run_platform_mismatch_is_dockerd_error(store):
    r = lamina(store, "run", "--rm", "--platform", "linux/amd64", "bb-arm64", "true", check=False)
    assert r.returncode == 125
    assert ("image with reference bb-arm64 was found but does not match the specified platform: "
            "wanted linux/amd64, actual: linux/arm64") in r.stderr


def test_bad_platform_is_refused(store):
    r = lamina(store, "import", "--platform", "linux//", "/dev/null", "x", check=False)
    assert r.returncode != 0 and "invalid platform" in r.stderr


def test_multi_platform_build_makes_an_index(store, tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    r = lamina(store, "build", "--platform", "linux/amd64,linux/arm64", "-t", "multi", str(tmp_path))
    assert "[linux/amd64]" in r.stdout and "[linux/arm64]" in r.stdout
    assert "Successfully tagged multi:latest" in r.stdout

    # the tag names the host's member: images and inspect show it as any image
    listed = lamina(store, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "multi:latest" in listed
    assert _config(store, "multi")["Architecture"] == "amd64"

    # the index: OCI media types, one manifest per platform with its platform fields
    from lamina.system import System
    from lamina.transfer.multiplatform import index_of, members

    system = System(str(store))
    try:
        digest, doc = index_of(system, "multi")
        assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
        assert doc["schemaVersion"] == 2
        assert [m["mediaType"] for m in doc["manifests"]] == ["application/vnd.oci.image.manifest.v1+json"] * 2
        assert [m["platform"] for m in doc["manifests"]] == [{"architecture": "amd64", "os": "linux"},
                                                             {"architecture": "arm64", "os": "linux"}]
        found = members(system, doc)
        assert [str(p) for p, _ in found] == ["linux/amd64", "linux/arm64"]
        for plat, image_id in found:
            assert system.images.config(image_id)["architecture"] == plat.architecture
    finally:
        system.close()

    # each member ran its RUN steps on its own architecture; TARGET* as BuildKit sets them;
    # the FROM --platform=$BUILDPLATFORM stage ran natively in both builds
    amd = lamina(store, "run", "--rm", "multi").stdout.splitlines()
    assert amd == ["amd64 linux/amd64 linux [] linux/amd64 amd64 x86_64", "tool x86_64 amd64"]
    arm = lamina(store, "run", "--rm", "--platform", "linux/arm64", "multi").stdout.splitlines()
    assert arm == ["arm64 linux/arm64 linux [] linux/amd64 amd64 aarch64", "tool x86_64 arm64"]
    assert lamina(store, "run", "--rm", "--platform", "linux/arm64", "multi", "uname", "-m").stdout.strip() \
        == "aarch64"


def test_push_sends_the_index_and_pull_picks_the_platform(store, tmp_path, registry):  # noqa: F811
    import urllib.request

    (tmp_path / "Dockerfile").write_text('FROM bb-${TARGETARCH}\nRUN uname -m > /m\nCMD ["cat", "/m"]\n')
    lamina(store, "build", "--platform", "linux/amd64,linux/arm64", "-t", "pushme", str(tmp_path))
    # a local multi-platform tag as a base: each platform's build takes its member
    child = tmp_path / "child"
    child.mkdir()
    (child / "Dockerfile").write_text("FROM pushme\nRUN uname -m > /n\n")
    lamina(store, "build", "--platform", "linux/arm64", "-t", "child-arm", str(child))
    assert lamina(store, "run", "--rm", "--platform", "linux/arm64", "child-arm", "cat", "/m", "/n").stdout \
        == "aarch64\naarch64\n"

    target = f"{registry.host}/multi/app:1"
    lamina(store, "tag", "pushme", target)  # the new tag stands for the index too
    r = lamina(store, "push", target)
    assert r.stdout.count(": digest: ") == 1  # one line, for the index under the tag
    req = urllib.request.Request(f"http://{registry.host}/v2/multi/app/manifests/1",
                                 headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
        doc = json.loads(resp.read())
    assert [m["platform"]["architecture"] for m in doc["manifests"]] == ["amd64", "arm64"]
    for m in doc["manifests"]:  # every member's manifest is there, by digest
        req = urllib.request.Request(f"http://{registry.host}/v2/multi/app/manifests/{m['digest']}",
                                     headers={"Accept": m["mediaType"]})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200

    other = tmp_path / "other"  # a second store pulls the arm64 member and runs it emulated
    lamina(other, "pull", "--platform", "linux/arm64", target)
    assert lamina(other, "run", "--rm", target).stdout.strip() == "aarch64"

    # a build FROM the pushed index takes each platform's member from the registry
    ctx = tmp_path / "from-registry"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {target}\nRUN cat /m > /m2 && uname -m >> /m2\nCMD [\"cat\", \"/m2\"]\n")
    third = tmp_path / "third"
    lamina(third, "build", "--platform", "linux/amd64,linux/arm64", "-t", "again", str(ctx))
    assert lamina(third, "run", "--rm", "again").stdout.split() == ["x86_64", "x86_64"]
    assert lamina(third, "run", "--rm", "--platform", "linux/arm64", "again").stdout.split() == ["aarch64", "aarch64"]
    # the base's tag still names the host's member: the arm64 pull did not move it
    assert _config(third, target)["Architecture"] == "amd64"


def test_save_keeps_the_index_and_prune_keeps_the_members(store, tmp_path):
    import tarfile

    (tmp_path / "Dockerfile").write_text('FROM bb-${TARGETARCH}\nRUN uname -m > /m && echo kept > /k\n')
    built = lamina(store, "build", "-q", "--platform", "linux/amd64,linux/arm64", "-t", "kept", str(tmp_path))
    tagged = built.stdout.split()[-1]
    # the arm64 member is no dangling image: not listed (as an intermediate one), not pruned
    from lamina.system import System
    from lamina.transfer.multiplatform import index_of, members

    system = System(str(store))
    try:
        arm64 = str(dict((str(p), i) for p, i in members(system, index_of(system, "kept")[1]))["linux/arm64"])
    finally:
        system.close()
    assert arm64 != tagged
    assert arm64 not in lamina(store, "images", "-q", "--no-trunc").stdout.split()
    assert arm64 in lamina(store, "images", "-a", "-q", "--no-trunc").stdout.split()
    _prune(store)
    assert lamina(store, "run", "--rm", "--platform", "linux/arm64", "kept", "cat", "/m").stdout.strip() == "aarch64"

    out = tmp_path / "kept.tar"
    lamina(store, "save", "-o", str(out), "kept")
    with tarfile.open(out) as tf:
        index = json.load(tf.extractfile("index.json"))
        [entry] = index["manifests"]
        assert entry["mediaType"] == "application/vnd.oci.image.index.v1+json"
        assert entry["annotations"]["io.containerd.image.name"] == "docker.io/library/kept:latest"
        nested = json.load(tf.extractfile("blobs/sha256/" + entry["digest"][7:]))
        assert [m["platform"]["architecture"] for m in nested["manifests"]] == ["amd64", "arm64"]
        archs = []
        for m in nested["manifests"]:
            manifest = json.load(tf.extractfile("blobs/sha256/" + m["digest"][7:]))
            config = json.load(tf.extractfile("blobs/sha256/" + manifest["config"]["digest"][7:]))
            archs.append(config["architecture"])
            for layer in manifest["layers"]:
                tf.getmember("blobs/sha256/" + layer["digest"][7:])
        assert archs == ["amd64", "arm64"]
        # docker's legacy manifest.json names the tagged (host) member, which every docker load reads
        [item] = json.load(tf.extractfile("manifest.json"))
        assert item["RepoTags"] == ["kept:latest"] and item["Config"] == "blobs/sha256/" + tagged[7:]

    lamina(store, "system", "prune", "-f")  # the index blob is kept (no image's config names it)
    assert lamina(store, "run", "--rm", "--platform", "linux/arm64", "kept", "cat", "/k").stdout == "kept\n"
    check = lamina(store, "system", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    lamina(store, "rmi", "kept")  # the tag gone, its index keeps nothing
    _prune(store)
    assert arm64 not in lamina(store, "images", "-a", "-q", "--no-trunc").stdout.split()
    assert lamina(store, "run", "--rm", "--platform", "linux/arm64", "kept", "true", check=False).returncode == 125


def _prune(root):
    """POST /images/prune (docker image prune), the engine's."""
    from lamina.engine.images import prune
    from lamina.system import System

    system = System(str(root))
    try:
        prune(system)
    finally:
        system.close()


def test_single_foreign_platform_is_a_plain_image(store, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM bb-amd64\nRUN echo never\n")
    # bb-amd64 is here only for amd64: BuildKit would pull linux/arm64; nothing to pull from here
    r = lamina(store, "build", "--platform", "linux/arm64", str(tmp_path), check=False)
    assert r.returncode != 0 and "FROM" in r.stderr + r.stdout
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    lamina(store, "build", "-t", "scratch-host", str(tmp_path))  # first: a cache entry for the host's scratch
    lamina(store, "build", "--platform", "linux/arm64", "-t", "scratch-arm", str(tmp_path))
    assert _config(store, "scratch-arm")["Architecture"] == "arm64"  # not the host's cached step
    assert _config(store, "scratch-host")["Architecture"] == "amd64"
    r = lamina(store, "build", "--platform", "linux/arm64", "-t", "scratch-arm", str(tmp_path))
    assert "Using cache" in r.stdout  # its own entry hits


def test_platform_args_units():
    from lamina.builder.stages import platform_args
    from lamina.engine.platformbuild import parse_platforms
    from lamina.transfer.platforms import Platform

    plats = parse_platforms(["linux/amd64,linux/arm64", "linux/arm64", "linux/arm/v7"])
    assert [str(p) for p in plats] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    args = platform_args(Platform("linux", "arm", "v7"))
    assert (args["TARGETPLATFORM"], args["TARGETARCH"], args["TARGETVARIANT"]) == ("linux/arm/v7", "arm", "v7")
    assert args["BUILDPLATFORM"] == "linux/amd64" and args["BUILDARCH"] == "amd64"
