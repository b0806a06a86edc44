"""Multi-platform images through `load` and `--cache-to` (issue 15).

`load` of an archive whose index.json names an image index (lamina's `save` of a
multi-platform tag, buildx/BuildKit's `type=oci` export, docker ≥ 25's save) keeps
every member: the tag names the host's member, `run --platform` picks another.
docker 20.10 (checked on the development machine) reads manifest.json only, so it
keeps the host's member alone, and refuses an archive without manifest.json; docker
with the containerd image store keeps them all, as lamina now does.

A multi-platform build with `--cache-to` exports every platform's steps (it used to
export the last platform's only): a cold store builds every platform from the cache.

The images are FROM scratch with a COPY that names $TARGETARCH: no emulation needed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from conftest import requires_root

pytestmark = requires_root
LAMINA = [sys.executable, "-m", "lamina"]
PLATFORMS = "linux/amd64,linux/arm64"


def lamina(root, *args, check=True, timeout=240):
    p = subprocess.run(LAMINA + ["--root", str(root), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture
def ctx(tmp_path):
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "f").write_text("hi\n")
    (d / "Dockerfile").write_text("FROM scratch\nARG TARGETARCH\nCOPY f /f-$TARGETARCH\nCOPY f /g\n")
    return d


def files_for(root, platform, image="mp:1"):
    name = "c-" + platform.replace("/", "-")
    lamina(root, "create", "--platform", platform, "--name", name, image, "true")
    try:
        out = subprocess.run(LAMINA + ["--root", str(root), "export", name], capture_output=True, check=True).stdout
        return {m.name for m in tarfile.open(fileobj=io.BytesIO(out)) if m.name.startswith("f-")}
    finally:
        lamina(root, "rm", name)


def assert_every_member(root):
    assert files_for(root, "linux/arm64") == {"f-arm64"}
    assert files_for(root, "linux/amd64") == {"f-amd64"}
    assert lamina(root, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout == "mp:1\n"
    assert lamina(root, "system", "check").returncode == 0


@pytest.mark.parametrize("how", ["save", "oci-export", "oci-export-partial"])
def test_load_keeps_every_platform(tmp_path, ctx, how):
    a, b = tmp_path / "a", tmp_path / "b"
    archive = tmp_path / "mp.tar"
    if how == "save":
        lamina(a, "build", "--platform", PLATFORMS, "-t", "mp:1", ctx)
        lamina(a, "save", "-o", archive, "mp:1")
    else:
        lamina(a, "build", "--platform", PLATFORMS, "-t", "mp:1", "-o", f"type=oci,dest={archive}", ctx)
    if how == "oci-export-partial":  # a save may hold some platforms only: the others are left out
        archive = _without_member(archive, "arm64", tmp_path / "partial.tar")
    out = lamina(b, "load", "-i", archive)
    assert out.stdout.splitlines()[-1] == "Loaded image: mp:1" and "Loaded image ID" not in out.stdout
    if how == "oci-export-partial":
        assert files_for(b, "linux/amd64") == {"f-amd64"}
        missing = lamina(b, "create", "--platform", "linux/arm64", "mp:1", check=False)
        assert "does not match the specified platform: wanted linux/arm64, actual: linux/amd64" in missing.stderr
        return
    assert_every_member(b)
    again = tmp_path / "again.tar"  # the index goes round unchanged
    lamina(b, "save", "-o", again, "mp:1")
    with tarfile.open(archive) as one, tarfile.open(again) as two:
        assert json.load(one.extractfile("index.json")) == json.load(two.extractfile("index.json"))


def _without_member(archive, arch, out):
    with tarfile.open(archive) as tf:
        members = {m.name: tf.extractfile(m).read() if m.isfile() else None for m in tf}
    index = json.loads(members["index.json"])
    nested = json.loads(members["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    for m in nested["manifests"]:
        if m["platform"]["architecture"] == arch:
            del members["blobs/sha256/" + m["digest"][7:]]
    with tarfile.open(out, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return out


def test_cache_to_exports_every_platform(tmp_path, ctx):
    a, b = tmp_path / "a", tmp_path / "b"
    layout = tmp_path / "cache"
    built = lamina(a, "build", "--platform", PLATFORMS, "--cache-to", f"type=local,dest={layout}", "-t", "mp:1", ctx)
    assert "WARNING" not in built.stderr
    steps = []
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        doc = json.loads((layout / "blobs/sha256" / m["digest"][7:]).read_text())
        steps.append(doc["annotations"]["dev.lamina.cache.instruction"])
    assert sorted(steps) == sorted(["ARG TARGETARCH", "COPY f /f-$TARGETARCH", "COPY f /g"] * 2)
    cold = lamina(b, "build", "--platform", PLATFORMS, "--cache-from", f"type=local,src={layout}", "-t", "mp:1", ctx)
    assert cold.stdout.count("Using cache") == 6, cold.stdout
    assert lamina(b, "images", "-q", "--no-trunc").stdout == lamina(a, "images", "-q", "--no-trunc").stdout
    assert_every_member(b)
    assert os.path.isdir(layout / "blobs")
