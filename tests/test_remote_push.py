"""push against a real registry: compression cache, skips, mounts, chunked uploads, zstd."""

from __future__ import annotations

import gzip
import http.client
import json

import pytest

from registry_fixtures import registry, proxy, docker_config  # noqa: F401 - pytest fixtures
from registry_fixtures import assert_store_ok, make_image, tar_bytes

from lamina import oci
from lamina.errors import LaminaError
from lamina.reference import parse
from lamina.system import System
from lamina.transfer.progress import PlainProgress
from lamina.transfer.push import Pusher


def http_get(host: str, path: str, accept: str = oci.OCI_MANIFEST + "," + oci.DOCKER_MANIFEST):
    c = http.client.HTTPConnection(host, timeout=10)
    c.request("GET", path, headers={"Accept": accept})
    r = c.getresponse()
    return r.status, dict(r.getheaders()), r.read()


@pytest.fixture
def system(tmp_path, docker_config):
    s = System(str(tmp_path / "root"))
    yield s
    s.close()


def push(system, name, capsys=None, **kw):
    Pusher(system, PlainProgress(__import__("sys").stdout), **kw).push(parse(name))


def test_push_compresses_and_caches(system, registry, capsys):
    layer = tar_bytes({"etc/hello": b"hello world\n" * 500})
    image = make_image(system, [layer], f"{registry.host}/push/one:v1")
    push(system, f"{registry.host}/push/one:v1")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"The push refers to repository [{registry.host}/push/one]"
    diff_short = oci.diff_ids(system.images.config(image))[0].short
    assert f"{diff_short}: Preparing" in out and f"{diff_short}: Pushed" in out
    assert out[-1].startswith("v1: digest: sha256:") and " size: " in out[-1]
    digest = out[-1].split()[2]

    status, headers, raw = http_get(registry.host, "/v2/push/one/manifests/v1")
    assert status == 200 and headers["Docker-Content-Digest"] == digest
    manifest = json.loads(raw)
    assert manifest["mediaType"] == oci.OCI_MANIFEST
    assert manifest["config"]["digest"] == str(image)
    desc = manifest["layers"][0]
    assert desc["mediaType"] == oci.OCI_LAYER_GZIP
    _, _, blob = http_get(registry.host, f"/v2/push/one/blobs/{desc['digest']}")
    assert gzip.decompress(blob) == layer  # the registry holds gzip of exactly our layer

    # the compressed blob is cached and remembered for the diff_id
    cached = system.images.blob_for_diff_id(oci.diff_ids(system.images.config(image))[0])
    assert any(str(d.digest) == desc["digest"] and d.media_type == oci.OCI_LAYER_GZIP for d in cached)
    assert f"{registry.host}/push/one@{digest}" in system.images.digests_of(image)
    assert_store_ok(system)

    # second push: nothing recompressed, nothing uploaded
    import lamina.transfer.push as pushmod

    def boom(*a, **k):
        raise AssertionError("recompressed")

    orig = pushmod.compress_layer
    pushmod.compress_layer = boom
    try:
        push(system, f"{registry.host}/push/one:v1")
    finally:
        pushmod.compress_layer = orig
    out = capsys.readouterr().out
    assert f"{diff_short}: Layer already exists" in out
    assert out.splitlines()[-1].split()[2] == digest


def test_push_mounts_from_other_repository(system, registry, capsys):
    image = make_image(system, [tar_bytes({"a": b"A" * 3000}), tar_bytes({"b": b"B" * 3000})],
                       f"{registry.host}/mount/src:1")
    push(system, f"{registry.host}/mount/src:1")
    system.images.tag(image, parse(f"{registry.host}/mount/dst:1"))
    capsys.readouterr()
    push(system, f"{registry.host}/mount/dst:1")
    out = capsys.readouterr().out
    assert out.count("Mounted from mount/src") == 2
    status, _, _ = http_get(registry.host, "/v2/mount/dst/manifests/1")
    assert status == 200


def test_push_progress_lines_as_dockerd(system, registry, proxy, capsys):
    """dockerd 20.10's lines (seen on this machine, non-tty) for a second image on a pushed
    base, the same image to other repositories of the registry, and a mount the registry
    refuses: a layer another repository holds is mounted from the newest such repository
    (the most path components in common first), a refused mount falls back to an upload."""
    base = tar_bytes({"base": b"base layer\n" * 400})
    base_image = make_image(system, [base], f"{proxy.host}/lines/base:1")
    child_image = make_image(system, [base, tar_bytes({"top": b"child\n"})], f"{proxy.host}/lines/child:1")
    base_short = oci.diff_ids(system.images.config(base_image))[0].short
    top_short = oci.diff_ids(system.images.config(child_image))[1].short

    def lines(name):
        capsys.readouterr()
        push(system, f"{proxy.host}/{name}")
        return [l for l in capsys.readouterr().out.splitlines() if not l.endswith(": Preparing")]

    out = lines("lines/base:1")
    assert out[1:-1] == [f"{base_short}: Pushed"]
    assert lines("lines/base:1")[1:-1] == [f"{base_short}: Layer already exists"]
    # the second image: its base from the repository it went to, its own layer uploaded
    out = lines("lines/child:1")
    assert sorted(out[1:-1]) == sorted([f"{base_short}: Mounted from lines/base", f"{top_short}: Pushed"])
    # the same image to another repository: from the newest repository holding the layer
    system.images.tag(base_image, parse(f"{proxy.host}/lines/other:1"))
    assert lines("lines/other:1")[1:-1] == [f"{base_short}: Mounted from lines/child"]
    system.images.tag(base_image, parse(f"{proxy.host}/lines/base:2"))
    assert lines("lines/base:2")[1:-1] == [f"{base_short}: Layer already exists"]
    # sources the registry does not know: each mount refused (202, a session), the last
    # session used for the upload, the others cancelled
    lonely = make_image(system, [tar_bytes({"lonely": b"x" * 2000})], f"{proxy.host}/lines/lonely:1")
    push(system, f"{proxy.host}/lines/lonely:1")
    delete_blob(registry.host, "lines/lonely", json.loads(
        http_get(registry.host, "/v2/lines/lonely/manifests/1")[2])["layers"][0]["digest"])
    for gone in ("gone/one", "gone/two"):
        system.images.add_repo_digest(lonely, f"{proxy.host}/{gone}@sha256:{'0' * 64}")
    proxy.log.clear()
    out = lines("lines/lonely:1")
    lonely_short = oci.diff_ids(system.images.config(lonely))[0].short
    assert out[1:-1] == [f"{lonely_short}: Pushed"]
    mounts = [p for m, p, h in proxy.log if m == "POST" and "mount=" in p]
    assert len(mounts) == 2 and "from=gone%2Ftwo" in mounts[0] and "from=gone%2Fone" in mounts[1]  # newest first
    assert sum(m == "DELETE" for m, p, h in proxy.log) == 1
    assert http_get(registry.host, "/v2/lines/lonely/manifests/1")[0] == 200
    assert_store_ok(system)


def test_push_queues_layers_top_first_and_says_waiting(system, registry, capsys):
    """dockerd 20.10 (seen here, 8 layers): Preparing from the top layer down, then
    Waiting for each layer queued behind the 5 upload slots, in that order."""
    layers = [tar_bytes({f"l{i}": f"layer {i}\n".encode() * 100}) for i in range(8)]
    image = make_image(system, layers, f"{registry.host}/push/waiting:1")
    shorts = [d.short for d in oci.diff_ids(system.images.config(image))][::-1]
    push(system, f"{registry.host}/push/waiting:1")
    out = capsys.readouterr().out.splitlines()
    assert out[1:12] == [f"{s}: Preparing" for s in shorts] + [f"{s}: Waiting" for s in shorts[5:]]
    assert sorted(out[12:-1]) == sorted(f"{s}: Pushed" for s in shorts)


def test_push_default_tag_and_missing_image(system, registry, capsys):
    from lamina.cli.main import main

    code = main(["--root", system.root, "push", f"{registry.host}/nothing/here"])
    captured = capsys.readouterr()
    assert code == 1
    # docker 20.10: the repository line first, then the daemon's stream error, bare
    assert captured.out.splitlines() == ["Using default tag: latest",
                                         f"The push refers to repository [{registry.host}/nothing/here]"]
    assert captured.err == f"An image does not exist locally with the tag: {registry.host}/nothing/here\n"


def test_push_zstd(system, registry, capsys):
    pytest.importorskip("zstandard")
    import zstandard

    layer = tar_bytes({"z": b"zstd!" * 4000})
    make_image(system, [layer], f"{registry.host}/push/zstd:1")
    push(system, f"{registry.host}/push/zstd:1", compression="zstd")
    _, _, raw = http_get(registry.host, "/v2/push/zstd/manifests/1")
    desc = json.loads(raw)["layers"][0]
    assert desc["mediaType"] == oci.OCI_LAYER_ZSTD
    _, _, blob = http_get(registry.host, f"/v2/push/zstd/blobs/{desc['digest']}")
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == layer


def delete_blob(host: str, repo: str, digest: str) -> None:
    c = http.client.HTTPConnection(host, timeout=10)
    c.request("DELETE", f"/v2/{repo}/blobs/{digest}")
    r = c.getresponse()
    r.read()
    assert r.status == 202, r.status


def test_first_push_streams_then_stored_blob_goes_in_chunks(system, registry, proxy, capsys, monkeypatch):
    """A fresh layer is compressed and uploaded at once (one chunked PATCH); a cached
    blob the registry lacks is uploaded from the store, in Content-Range chunks when big."""
    import os

    import lamina.remote.registry as regmod

    monkeypatch.setattr(regmod, "CHUNKED_THRESHOLD", 64 << 10)
    monkeypatch.setattr(regmod, "CHUNK_SIZE", 100 << 10)
    layer = tar_bytes({"r": os.urandom(300 << 10)})  # incompressible: several chunks
    make_image(system, [layer], f"{proxy.host}/push/logged:1")
    push(system, f"{proxy.host}/push/logged:1")
    patches = [h for m, p, h in proxy.log if m == "PATCH"]
    assert len(patches) == 1 and patches[0]["Transfer-Encoding"] == "chunked"
    assert any(m == "PUT" and "digest=sha256%3A" in p for m, p, h in proxy.log)
    _, _, raw = http_get(registry.host, "/v2/push/logged/manifests/1")
    desc = json.loads(raw)["layers"][0]
    _, _, blob = http_get(registry.host, f"/v2/push/logged/blobs/{desc['digest']}")
    assert gzip.decompress(blob) == layer

    delete_blob(registry.host, "push/logged", desc["digest"])
    system.images.tag(system.images.resolve(f"{proxy.host}/push/logged:1").id, parse(f"{proxy.host}/push/chunked:1"))
    proxy.log.clear()
    push(system, f"{proxy.host}/push/chunked:1")
    patches = [h for m, p, h in proxy.log if m == "PATCH"]
    assert len(patches) >= 3
    assert [h["Content-Range"].split("-")[0] for h in patches][:2] == ["0", str(100 << 10)]
    _, _, blob = http_get(registry.host, f"/v2/push/chunked/blobs/{desc['digest']}")
    assert gzip.decompress(blob) == layer


def test_broken_stream_falls_back_to_a_stored_upload(system, registry, proxy, capsys):
    make_image(system, [tar_bytes({"f": b"fallback" * 5000})], f"{proxy.host}/push/fallback:1")

    def fail_patch(ex):
        if ex.method == "PATCH":
            ex.respond(500, b"no streams today")
            return True
        return False

    proxy.fault = fail_patch
    push(system, f"{proxy.host}/push/fallback:1")
    methods = [(m, "digest=" in p) for m, p, h in proxy.log if "/blobs/uploads/" in p]
    assert ("PATCH", False) in methods and ("PUT", True) in methods
    assert "Pushed" in capsys.readouterr().out
    status, _, _ = http_get(registry.host, "/v2/push/fallback/manifests/1")
    assert status == 200


def test_parallel_gzip_is_plain_gzip_and_deterministic():
    import io
    import os
    from concurrent.futures import ThreadPoolExecutor

    from lamina.transfer.compress import parallel_gzip

    data = os.urandom(300_000) + b"text " * 500_000 + os.urandom(10)
    with ThreadPoolExecutor(4) as pool:
        outs = []
        for _ in range(2):
            buf = io.BytesIO()
            parallel_gzip(io.BytesIO(data), buf.write, pool, level=1, block=64 << 10)
            outs.append(buf.getvalue())
        empty = io.BytesIO()
        parallel_gzip(io.BytesIO(b""), empty.write, pool, level=6)
    assert outs[0] == outs[1]
    assert gzip.decompress(outs[0]) == data
    assert gzip.decompress(empty.getvalue()) == b""
    import zlib

    d = zlib.decompressobj(31)  # one gzip member, not a concatenation
    assert d.decompress(outs[0]) == data and d.eof and d.unused_data == b""


def test_push_refuses_digest_reference(system, registry):
    make_image(system, [tar_bytes({"a": b"1"})], f"{registry.host}/push/d:1")
    with pytest.raises(LaminaError, match="digest reference"):
        push(system, f"{registry.host}/push/d@sha256:" + "a" * 64)
