"""Faults between lamina and a registry (catalogue 4.B): each must give a one-line
error naming the registry and object, leave no image and no unverified blob, keep
`system check` clean, and a retry must succeed once the fault is gone."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from registry_fixtures import registry, proxy, docker_config  # noqa: F401 - pytest fixtures
from registry_fixtures import assert_store_ok, make_image, push_raw_image, put_blob, put_manifest, sha256, tar_bytes

from conftest import requires_root
from lamina import oci
from lamina.errors import LaminaError, NoSuchImage
from lamina.reference import parse
from lamina.system import System
from lamina.transfer.progress import QuietProgress
from lamina.transfer.pull import Puller
from lamina.transfer.push import Pusher

pytestmark = requires_root

LAYER = tar_bytes({"data/blob.bin": os.urandom(200_000), "etc/msg": b"hello\n" * 1000})
GZ = gzip.compress(LAYER, mtime=0)


@pytest.fixture
def setup(tmp_path, registry, proxy, docker_config):
    """An image in the registry (via the proxy name) and an empty store to pull into."""
    repo = f"faults/{tmp_path.name.lower().replace('_', '-')[:40]}"
    manifest_digest, config = push_raw_image(registry.host, repo, "1", [LAYER], compress=lambda b: GZ)
    system = System(str(tmp_path / "root"))
    yield system, f"{proxy.host}/{repo}:1", repo
    system.close()


def pull(system, name):
    return Puller(system, QuietProgress()).pull(parse(name))


def assert_nothing_visible(system, name, bad_digest=None):
    with pytest.raises(NoSuchImage):
        system.images.resolve(name)
    assert system.images.list() == []
    if bad_digest:
        assert not system.content.has(bad_digest)
    assert_store_ok(system)


def blob_path(ex) -> bool:
    return ex.method == "GET" and "/blobs/" in ex.path and sha256(GZ)[7:] in ex.path


def one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_blob_with_wrong_digest(setup, proxy):
    system, name, repo = setup

    def corrupt(ex):
        if blob_path(ex):
            status, headers, body = ex.upstream()
            ex.respond(status, body[:-1] + bytes([body[-1] ^ 1]), headers)
            return True
        return False

    proxy.fault = corrupt
    with pytest.raises(LaminaError) as e:
        pull(system, name)
    assert one_line(e) == (f"blob {sha256(GZ)} from {proxy.host}/{repo}: digest mismatch "
                           f"(content hashes to {sha256(GZ[:-1] + bytes([GZ[-1] ^ 1]))})")
    from lamina.digest import Digest

    assert_nothing_visible(system, name, Digest(sha256(GZ)))
    proxy.fault = None
    pull(system, name)
    assert system.images.resolve(name)


def test_truncated_blob_resumes_with_range(setup, proxy):
    system, name, _ = setup
    cut = {"n": 0}

    def truncate_once(ex):
        if blob_path(ex) and cut["n"] == 0:
            cut["n"] += 1
            status, headers, body = ex.upstream()
            ex.respond(200, body[: len(body) // 2], headers, length=len(body), close=True)
            return True
        return False

    proxy.fault = truncate_once
    pull(system, name)
    ranges = [h.get("Range") for m, p, h in proxy.log if m == "GET" and "/blobs/" in p and sha256(GZ)[7:] in p]
    assert ranges[0] is None and ranges[1] == f"bytes={len(GZ) // 2}-"
    assert_store_ok(system)


def test_resume_without_range_support(setup, proxy):
    """A server that answers a Range request with 200 and the whole blob: the prefix
    we already have is skipped, and the result still verifies."""
    system, name, _ = setup
    cut = {"n": 0}

    def no_ranges(ex):
        if blob_path(ex):
            ex.headers.pop("Range", None)
            status, headers, body = ex.upstream()
            if cut["n"] == 0:
                cut["n"] += 1
                ex.respond(200, body[: len(body) // 3], headers, length=len(body), close=True)
            else:
                ex.respond(200, body, headers)
            return True
        return False

    proxy.fault = no_ranges
    pull(system, name)
    assert system.images.resolve(name)
    assert_store_ok(system)


def test_blob_always_truncated(setup, proxy, monkeypatch):
    import lamina.remote.registry as regmod

    monkeypatch.setattr(regmod, "MAX_RESUMES", 2)
    system, name, repo = setup

    def truncate(ex):
        if blob_path(ex):
            status, headers, body = ex.upstream()
            ex.respond(status, body[:100], headers, length=len(body), close=True)
            return True
        return False

    proxy.fault = truncate
    with pytest.raises(LaminaError) as e:
        pull(system, name)
    assert one_line(e).startswith(f"blob {sha256(GZ)} from {proxy.host}/{repo}: truncated at ")
    assert_nothing_visible(system, name)
    proxy.fault = None
    pull(system, name)


def test_endless_blob_body(setup, proxy):
    system, name, repo = setup

    def endless(ex):
        if blob_path(ex):
            h = ex.handler
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Connection", "close")
            h.end_headers()
            try:
                for _ in range(100_000):  # ~6 GB if nobody stops reading
                    h.wfile.write(b"\0" * 65536)
            except OSError:
                pass
            h.close_connection = True
            return True
        return False

    proxy.fault = endless
    t = time.time()
    with pytest.raises(LaminaError) as e:
        pull(system, name)
    assert time.time() - t < 30
    assert one_line(e) == f"blob {sha256(GZ)} from {proxy.host}/{repo}: size mismatch (more than the {len(GZ)} bytes declared)"
    assert_nothing_visible(system, name)


def test_5xx_then_success_and_giving_up(setup, proxy):
    system, name, repo = setup
    seen = {"n": 0}

    def flaky(ex):
        if "/manifests/" in ex.path and seen["n"] < 2:
            seen["n"] += 1
            ex.respond(503, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}')
            return True
        return False

    proxy.fault = flaky
    pull(system, name)
    assert seen["n"] == 2

    def down(ex):
        if blob_path(ex):
            ex.respond(500, b"boom")
            return True
        return False

    other = System(system.root + "-2")
    proxy.fault = down
    with pytest.raises(LaminaError) as e:
        pull(other, name)
    assert one_line(e) == (f"Error response from registry {proxy.host}: blob {sha256(GZ)}: 500 boom "
                           "(gave up after 3 attempts)")
    assert_nothing_visible(other, name)
    other.close()


def test_429_with_retry_after(setup, proxy):
    system, name, _ = setup
    hits = []

    def limited(ex):
        if "/manifests/" in ex.path:
            hits.append(time.time())
            if len(hits) == 1:
                ex.respond(429, b"slow down", {"Retry-After": "1"})
                return True
        return False

    proxy.fault = limited
    pull(system, name)
    assert hits[1] - hits[0] >= 0.95


def test_oversized_manifest(setup, proxy):
    system, name, repo = setup

    def huge(ex):
        if "/manifests/" in ex.path:
            ex.respond(200, b"{" + b" " * (5 << 20) + b"}", {"Content-Type": oci.OCI_MANIFEST})
            return True
        return False

    proxy.fault = huge
    with pytest.raises(LaminaError) as e:
        pull(system, name)
    assert one_line(e) == f"Error response from registry {proxy.host}: manifest for {repo}:1 is larger than 4 MiB"
    assert_nothing_visible(system, name)


@pytest.mark.parametrize("kind", ["content-type", "ambiguous", "schema1"])
def test_manifest_type_confusion(setup, proxy, registry, kind):
    system, name, repo = setup

    def confuse(ex):
        if "/manifests/" in ex.path:
            status, headers, body = ex.upstream()
            doc = json.loads(body)
            if kind == "content-type":
                headers["Content-Type"] = oci.OCI_INDEX
            elif kind == "ambiguous":
                doc["manifests"] = []
            else:
                doc["schemaVersion"] = 1
            data = json.dumps(doc).encode()
            headers.pop("Docker-Content-Digest", None)
            ex.respond(status, data, headers)
            return True
        return False

    proxy.fault = confuse
    with pytest.raises(LaminaError) as e:
        pull(system, name)
    msg = one_line(e)
    assert msg.startswith(f"manifest for {repo}:1")
    assert {"content-type": "does not match its content", "ambiguous": "ambiguous",
            "schema1": "schema 1"}[kind] in msg
    assert_nothing_visible(system, name)


def test_hostile_digest_never_reaches_a_url(tmp_path, registry, proxy, docker_config):
    """The registry itself refuses such manifests, so the proxy serves them."""
    repo = "faults/evil-digest"
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(LAYER)]}}).encode()
    cfg = put_blob(registry.host, repo, config)
    for bad in ("sha256:../../x", "sha256:" + "A" * 64, "md5:" + "a" * 32, "sha256:abc"):
        for where in ("layer", "config"):
            layer = {"mediaType": oci.OCI_LAYER_GZIP, "digest": bad if where == "layer" else sha256(GZ), "size": 10}
            doc = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                   "config": {"mediaType": oci.OCI_CONFIG, "digest": bad if where == "config" else cfg,
                              "size": len(config)},
                   "layers": [layer]}

            def serve(ex, raw=json.dumps(doc).encode()):
                if "/manifests/" in ex.path:
                    ex.respond(200, raw, {"Content-Type": oci.OCI_MANIFEST})
                    return True
                return False

            proxy.fault = serve
            system = System(str(tmp_path / f"root-{where}"))
            proxy.log.clear()
            with pytest.raises(LaminaError) as e:
                pull(system, f"{proxy.host}/{repo}:1")
            assert "invalid digest" in one_line(e)
            assert [m for m, p, _ in proxy.log] == ["GET"]  # only the manifest was ever requested
            assert_nothing_visible(system, f"{proxy.host}/{repo}:1")
            system.close()


def test_diff_id_mismatch_and_count(tmp_path, registry, docker_config):
    system = System(str(tmp_path / "root"))
    push_raw_image(registry.host, "faults/diffid", "1", [LAYER], compress=lambda b: GZ,
                   diff_ids=[sha256(b"something else")])
    with pytest.raises(LaminaError) as e:
        pull(system, f"{registry.host}/faults/diffid:1")
    msg = one_line(e)
    assert msg.startswith(f"layer {sha256(GZ)} from {registry.host}/faults/diffid: ") and "hashes to" in msg
    from lamina.digest import Digest

    assert_nothing_visible(system, f"{registry.host}/faults/diffid:1", Digest(sha256(GZ)))
    assert system.layers.all() == []

    push_raw_image(registry.host, "faults/count", "1", [LAYER], compress=lambda b: GZ,
                   diff_ids=[sha256(LAYER), sha256(LAYER)])
    with pytest.raises(LaminaError, match="lists 2 diff_ids but the manifest has 1 layers"):
        pull(system, f"{registry.host}/faults/count:1")
    assert_store_ok(system)
    system.close()


def test_index_loops_and_missing_platform(tmp_path, registry, docker_config):
    system = System(str(tmp_path / "root"))
    m, _ = push_raw_image(registry.host, "faults/idx", "m", [LAYER], arch="s390x")
    size = len(json.dumps({}))  # replaced below with the real size
    import http.client

    c = http.client.HTTPConnection(registry.host)
    c.request("GET", f"/v2/faults/idx/manifests/{m}", headers={"Accept": oci.OCI_MANIFEST})
    size = len(c.getresponse().read())
    index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        {"mediaType": oci.OCI_MANIFEST, "digest": m, "size": size, "platform": {"os": "linux", "architecture": "s390x"}}]}
    put_manifest(registry.host, "faults/idx", "1", index, oci.OCI_INDEX)
    from lamina.transfer.platforms import Platform

    with pytest.raises(LaminaError) as e:
        Puller(system, QuietProgress(), platform=Platform("linux", "riscv64")).pull(parse(f"{registry.host}/faults/idx:1"))
    assert "no matching manifest for linux/riscv64 in the manifest list entries (available: linux/s390x)" in one_line(e)
    assert_store_ok(system)
    system.close()


def test_push_retries_5xx_and_reports_failures(tmp_path, registry, proxy, docker_config):
    system = System(str(tmp_path / "root"))
    make_image(system, [LAYER], f"{proxy.host}/faults/push:1")
    fails = {"n": 0}

    def flaky_put(ex):
        if ex.method == "PUT" and "/blobs/uploads/" in ex.path and fails["n"] < 1:
            fails["n"] += 1
            ex.respond(502, b"bad gateway")
            return True
        return False

    proxy.fault = flaky_put
    Pusher(system, QuietProgress()).push(parse(f"{proxy.host}/faults/push:1"))
    assert fails["n"] == 1

    def deny(ex):
        if ex.method == "PUT" and "/manifests/" in ex.path:
            ex.respond(403, b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}')
            return True
        return False

    proxy.fault = deny
    with pytest.raises(LaminaError) as e:
        Pusher(system, QuietProgress()).push(parse(f"{proxy.host}/faults/push:1"))
    assert one_line(e) == (f"Error response from registry {proxy.host}: manifest for faults/push:1: "
                           "requested access to the resource is denied")
    assert_store_ok(system)
    system.close()


def test_kill_during_download_then_repull(tmp_path, setup, proxy):
    """SIGKILL mid-blob: the next command finds no blob, no layer, no image; a re-pull works."""
    system, name, _ = setup
    root = system.root
    system.close()
    started = {"n": 0}

    def stall(ex):
        if blob_path(ex):
            started["n"] += 1
            status, headers, body = ex.upstream()
            h = ex.handler
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            time.sleep(30)
            return True
        return False

    proxy.fault = stall
    proc = subprocess.Popen([sys.executable, "-m", "lamina", "--root", root, "pull", "-q", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while started["n"] == 0 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proxy.fault = None
    after = System(root)  # recovery runs here
    assert_nothing_visible(after, name)
    pull(after, name)
    assert after.images.resolve(name)
    assert_store_ok(after)
    after.close()
