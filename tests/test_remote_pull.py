"""pull from a real registry: docker's output, OCI and Docker manifests, indexes and
platforms, gzip/zstd/plain layers, digests, the CLI, and ensure_image for run/build."""

from __future__ import annotations

import gzip
import io
import json
import os
import sys

import pytest

from registry_fixtures import registry, token_registry, docker_config  # noqa: F401 - pytest fixtures
from registry_fixtures import (assert_store_ok, make_image, push_raw_image, put_manifest, sha256, tar_bytes)

from conftest import requires_root
from lamina import oci
from lamina.cli.main import main
from lamina.digest import chain_ids
from lamina.errors import LaminaError, RegistryError
from lamina.reference import parse
from lamina.system import System
from lamina.transfer.platforms import Platform, host_platform
from lamina.transfer.progress import PlainProgress, QuietProgress
from lamina.transfer.pull import Puller
from lamina.transfer.push import Pusher

pytestmark = requires_root  # pulled layers are unpacked (owners, devices)

LAYER_A = tar_bytes({"etc/a.txt": b"layer a\n" * 200})
LAYER_B = tar_bytes({"etc/b.txt": b"layer b\n" * 300, "usr/bin/tool": b"#!/bin/sh\necho tool\n"})
LAYER_C = tar_bytes({"etc/c.txt": b"layer c\n" * 100})


@pytest.fixture(autouse=True)
def _credentials(docker_config):
    """Every test here reads credentials from a private docker config."""


def pull(system, name, platform=None):
    return Puller(system, PlainProgress(sys.stdout), platform=platform).pull(parse(name))


def test_pull_roundtrip_output_and_reuse(stores, registry, capsys):
    src, dst = stores("src"), stores("dst")
    name = f"{registry.host}/pull/round:v1"
    image = make_image(src, [LAYER_A, LAYER_B], name)
    Pusher(src, QuietProgress()).push(parse(name))
    pushed_digest = src.images.digests_of(image)[0].split("@")[1]

    result = pull(dst, name)
    out = capsys.readouterr().out.splitlines()
    assert result.image_id == image  # same config bytes, same ID
    manifest = json.loads(dst.images.raw_manifest(dst.images.get(image)))
    shorts = [Digest_short(l["digest"]) for l in manifest["layers"]]
    assert out[0] == "v1: Pulling from pull/round"
    for s in shorts:
        assert f"{s}: Pulling fs layer" in out and f"{s}: Verifying Checksum" in out
        assert f"{s}: Download complete" in out and f"{s}: Pull complete" in out
        assert out.index(f"{s}: Pulling fs layer") < out.index(f"{s}: Pull complete")
    assert out[-2:] == [f"Digest: {pushed_digest}", f"Status: Downloaded newer image for {name}"]
    assert not any("Downloading" in l or "Extracting" in l for l in out)  # no byte counts off a terminal

    # exact pulled manifest kept; repo digest recorded; every layer unpacked
    assert sha256(dst.images.raw_manifest(dst.images.get(image))) == pushed_digest
    assert f"{registry.host}/pull/round@{pushed_digest}" in dst.images.digests_of(image)
    assert dst.images.resolve(name).id == image
    for chain in chain_ids(oci.diff_ids(dst.images.config(image))):
        assert dst.layers.get(chain) is not None
    top = dst.layers.get(chain_ids(oci.diff_ids(dst.images.config(image)))[-1])
    assert open(os.path.join(top.dir, "usr/bin/tool")).read().startswith("#!/bin/sh")
    assert dst.images.get(image).size > 0
    assert_store_ok(dst)

    # up to date: dockerd says nothing of the layers of an image it has
    pull(dst, name)
    assert capsys.readouterr().out.splitlines() == [
        "v1: Pulling from pull/round", f"Digest: {pushed_digest}", f"Status: Image is up to date for {name}"]

    # one layer here, one not: "Already exists" for it, the other's lines in dockerd's order
    partial = f"{registry.host}/pull/round:v2"
    make_image(src, [LAYER_A, LAYER_C], partial)
    Pusher(src, QuietProgress()).push(parse(partial))
    capsys.readouterr()
    pull(dst, partial)
    manifest = json.loads(dst.images.raw_manifest(dst.images.resolve(partial)))
    a, c = (Digest_short(l["digest"]) for l in manifest["layers"])
    assert a == shorts[0]
    digest = dst.images.digests_of(dst.images.resolve(partial).id)[0].split("@")[1]
    assert capsys.readouterr().out.splitlines() == [
        "v2: Pulling from pull/round", f"{a}: Already exists", f"{c}: Pulling fs layer", f"{c}: Verifying Checksum",
        f"{c}: Download complete", f"{c}: Pull complete", f"Digest: {digest}",
        f"Status: Downloaded newer image for {partial}"]

    # by digest: untagged, found through the repo digest
    by_digest = f"{registry.host}/pull/round@{pushed_digest}"
    assert pull(stores("third"), by_digest).image_id == image
    assert capsys.readouterr().out.splitlines()[0] == f"{pushed_digest}: Pulling from pull/round"


def Digest_short(d: str) -> str:
    return d[7:19]


def test_cli_pull_default_tag_quiet_and_bad_reference(stores, registry, capsys):
    src = stores("src")
    make_image(src, [LAYER_A], f"{registry.host}/pull/cli:latest")
    Pusher(src, QuietProgress()).push(parse(f"{registry.host}/pull/cli:latest"))
    root = str(src.root) + "-dst"
    assert main(["--root", root, "pull", f"{registry.host}/pull/cli"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Using default tag: latest"
    assert out[1] == "latest: Pulling from pull/cli"
    assert out[-1] == f"{registry.host}/pull/cli:latest"
    assert main(["--root", root + "2", "pull", "-q", f"{registry.host}/pull/cli"]) == 0
    assert capsys.readouterr().out == f"{registry.host}/pull/cli:latest\n"

    for bad in ("Upper/case", f"{registry.host}/a//b", "x:t1:t2", "name@sha256:abc", ":tag"):
        assert main(["--root", root, "pull", bad]) == 1
        err = capsys.readouterr().err
        assert err.startswith("invalid reference format") and err.count("\n") == 1  # docker's CLI: bare

    assert main(["--root", root, "pull", f"{registry.host}/pull/cli:nosuch"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # docker prints "Pulling from" only once the manifest exists
    assert captured.err == (f"Error response from registry {registry.host}: "
                            "manifest for pull/cli:nosuch not found: manifest unknown\n")


def test_pull_docker_schema2_gzip_and_plain_layers(stores, registry, capsys):
    _, config = push_raw_image(registry.host, "pull/docker", "gz", [LAYER_A, LAYER_B],
                               compress=lambda b: gzip.compress(b, mtime=0), docker_types=True)
    assert pull(stores("a"), f"{registry.host}/pull/docker:gz").image_id.value == config
    _, config = push_raw_image(registry.host, "pull/plain", "1", [LAYER_A, LAYER_B])
    s = stores("b")
    assert pull(s, f"{registry.host}/pull/plain:1").image_id.value == config
    assert_store_ok(s)


def test_pull_zstd(stores, registry, capsys):
    zstandard = pytest.importorskip("zstandard")
    _, config = push_raw_image(registry.host, "pull/zstd", "1", [LAYER_A, LAYER_B],
                               compress=lambda b: zstandard.ZstdCompressor().compress(b))
    s = stores("z")
    assert pull(s, f"{registry.host}/pull/zstd:1").image_id.value == config
    assert_store_ok(s)


def test_pull_index_and_platforms(stores, registry, capsys):
    host = host_platform()
    other = "s390x" if host.architecture != "s390x" else "ppc64le"
    m_host, c_host = push_raw_image(registry.host, "pull/multi", "host", [LAYER_A], arch=host.architecture)
    m_other, c_other = push_raw_image(registry.host, "pull/multi", "other", [LAYER_B], arch=other)

    def entry(digest, arch):
        return {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": manifest_size(registry.host, digest),
                "platform": {"os": "linux", "architecture": arch}}

    index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        entry(m_other, other),
        {**entry(m_host, "unknown"), "platform": {"os": "unknown", "architecture": "unknown"}},
        entry(m_host, host.architecture),
    ]}
    index_digest = put_manifest(registry.host, "pull/multi", "latest", index, oci.OCI_INDEX)
    s = stores("multi")
    result = pull(s, f"{registry.host}/pull/multi:latest")
    assert result.image_id.value == c_host and result.digest.value == index_digest
    assert f"{registry.host}/pull/multi@{index_digest}" in s.images.digests_of(result.image_id)
    assert pull(s, f"{registry.host}/pull/multi:latest", Platform("linux", other)).image_id.value == c_other
    with pytest.raises(RegistryError) as e:
        pull(s, f"{registry.host}/pull/multi:latest", Platform("linux", "arm64"))
    msg = str(e.value)
    assert "no matching manifest for linux/arm64" in msg
    assert "available: " in msg and f"linux/{other}" in msg and "unknown" not in msg
    # a single manifest of another architecture: refused when a platform was asked for
    with pytest.raises(RegistryError, match="does not match the specified platform"):
        pull(s, f"{registry.host}/pull/multi:other", Platform("linux", "arm64"))
    assert_store_ok(s)


def manifest_size(host, digest):
    import http.client

    c = http.client.HTTPConnection(host)
    c.request("HEAD", f"/v2/pull/multi/manifests/{digest}",
              headers={"Accept": oci.OCI_MANIFEST})
    r = c.getresponse()
    r.read()
    return int(r.getheader("Content-Length"))


def test_token_registry_anonymous_pull(stores, token_registry, docker_config, capsys):
    from registry_fixtures import login_file

    host = token_registry.host
    login_file(docker_config, host)
    src = stores("src")
    make_image(src, [LAYER_A], f"{host}/public/app:1")
    make_image(src, [LAYER_B], f"{host}/private/app:1")
    Pusher(src, QuietProgress()).push(parse(f"{host}/public/app:1"))
    Pusher(src, QuietProgress()).push(parse(f"{host}/private/app:1"))
    (docker_config / "config.json").unlink()  # anonymous from here on
    s = stores("anon")
    pull(s, f"{host}/public/app:1")
    with pytest.raises(RegistryError, match=r"unauthorized.*\(not logged in\)"):
        pull(s, f"{host}/private/app:1")
    assert_store_ok(s)


def test_ensure_image_pulls_missing(stores, registry, capsys):
    from lamina.cli.commands.registry import ensure_image

    src = stores("src")
    image = make_image(src, [LAYER_A], f"{registry.host}/pull/auto:latest")
    Pusher(src, QuietProgress()).push(parse(f"{registry.host}/pull/auto:latest"))
    s = stores("run")
    err = io.StringIO()
    rec = ensure_image(s, f"{registry.host}/pull/auto", out=err)
    assert rec.id == image
    captured = capsys.readouterr()
    assert captured.err.startswith(f"Unable to find image '{registry.host}/pull/auto:latest' locally\n")
    assert "Status: Downloaded newer image" in err.getvalue()
    assert ensure_image(s, f"{registry.host}/pull/auto", out=err).id == image  # present: no pull
    with pytest.raises(LaminaError):
        ensure_image(s, f"{registry.host}/pull/none", out=err)
