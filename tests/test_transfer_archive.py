"""save / load: docker's archive layouts (moby ≥ 25 and v20.10), OCI layout archives,
round trips that keep image IDs, and hostile archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from registry_fixtures import registry, docker_config  # noqa: F401 - pytest fixtures
from registry_fixtures import assert_store_ok, make_image, push_raw_image, sha256, tar_bytes

from conftest import requires_root
from lamina import oci
from lamina.digest import Digest
from lamina.errors import InvalidArchive, NoSuchImage
from lamina.reference import parse
from lamina.system import System
from lamina.transfer.load import load
from lamina.transfer.progress import QuietProgress
from lamina.transfer.save import save

pytestmark = requires_root  # load unpacks layers

LAYER_A = tar_bytes({"etc/a": b"A" * 5000})
LAYER_B = tar_bytes({"etc/b": b"B" * 7000, "bin/tool": b"tool"})


def save_bytes(system, names) -> bytes:
    r, w = os.pipe()
    import threading

    chunks = []
    t = threading.Thread(target=lambda: chunks.append(_read_all(r)))
    t.start()
    try:
        save(system, names, w)
    finally:
        os.close(w)
        t.join()
        os.close(r)
    return chunks[0]


def _read_all(fd) -> bytes:
    out = []
    while data := os.read(fd, 1 << 20):
        out.append(data)
    return b"".join(out)


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name.rstrip("/"): m for m in tf.getmembers()}


def read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.extractfile(name).read()


def do_load(system, data: bytes):
    return load(system, io.BytesIO(data), QuietProgress())


def test_save_layout_is_docker25(stores):
    s = stores("a")
    image = make_image(s, [LAYER_A, LAYER_B], "example.com/team/app:1.0")
    data = save_bytes(s, ["example.com/team/app:1.0"])
    ms = members(data)
    diff_ids = [sha256(LAYER_A), sha256(LAYER_B)]
    assert {"blobs", "blobs/sha256", "index.json", "manifest.json", "oci-layout", "repositories",
            f"blobs/sha256/{image.hex}"} | {f"blobs/sha256/{d[7:]}" for d in diff_ids} <= set(ms)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in ms.values())
    for name, m in ms.items():
        if name.startswith("blobs/sha256/") and m.isfile():
            assert hashlib.sha256(read(data, name)).hexdigest() == name.rsplit("/", 1)[1]
    assert data.endswith(b"\0" * 1024) and len(data) % 512 == 0
    assert read(data, f"blobs/sha256/{image.hex}") == s.images.raw_config(image)  # exact config bytes
    manifest_json = json.loads(read(data, "manifest.json"))
    assert manifest_json == [{"Config": f"blobs/sha256/{image.hex}", "RepoTags": ["example.com/team/app:1.0"],
                              "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids]}]
    index = json.loads(read(data, "index.json"))
    assert index["mediaType"] == oci.OCI_INDEX
    entry = index["manifests"][0]
    assert entry["annotations"] == {"io.containerd.image.name": "example.com/team/app:1.0",
                                    "org.opencontainers.image.ref.name": "1.0"}
    manifest = json.loads(read(data, f"blobs/sha256/{entry['digest'][7:]}"))
    assert [l["mediaType"] for l in manifest["layers"]] == [oci.OCI_LAYER] * 2
    assert [l["digest"] for l in manifest["layers"]] == diff_ids
    assert json.loads(read(data, "repositories")) == {"example.com/team/app": {"1.0": diff_ids[1][7:]}}
    assert json.loads(read(data, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    assert save_bytes(s, ["example.com/team/app:1.0"]) == data  # reproducible


def test_roundtrip_keeps_ids_and_tags(stores, capsys):
    src, dst = stores("src"), stores("dst")
    one = make_image(src, [LAYER_A], "app:1")
    two = make_image(src, [LAYER_A, LAYER_B], "app:2")
    src.images.tag(two, parse("other:latest"))
    data = save_bytes(src, ["app", "other"])  # a bare name saves every tag of the repository
    assert sorted(tag for item in json.loads(read(data, "manifest.json")) for tag in item["RepoTags"]) == [
        "app:1", "app:2", "other:latest"]
    loaded = do_load(dst, data)
    assert {l.image_id for l in loaded} == {one, two}
    assert dst.images.resolve("app:1").id == one
    assert dst.images.resolve("app:2").id == two
    assert dst.images.resolve("other").id == two
    assert_store_ok(dst)
    # untagged by ID
    third = stores("third")
    loaded = do_load(third, save_bytes(src, [one.short]))
    assert [(l.image_id, l.tags) for l in loaded] == [(one, ())]
    # a tag moving to another image is reported like docker does
    dst.images.tag(one, parse("app:2"))
    loaded = do_load(dst, save_bytes(src, ["app:2"]))
    assert loaded[0].replaced == {parse("app:2"): one}


def test_save_pulled_image_decompresses(stores, registry, docker_config):
    s = stores("pulled")
    from lamina.transfer.pull import Puller

    push_raw_image(registry.host, "archive/gz", "1", [LAYER_A, LAYER_B], compress=lambda b: gzip.compress(b, mtime=0))
    image = Puller(s, QuietProgress()).pull(parse(f"{registry.host}/archive/gz:1")).image_id
    data = save_bytes(s, [f"{registry.host}/archive/gz:1"])  # a pipe: decompressed to scratch files first
    assert read(data, f"blobs/sha256/{sha256(LAYER_B)[7:]}") == LAYER_B
    path = os.path.join(s.tmp_dir, "..", "direct.tar")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        save(s, [f"{registry.host}/archive/gz:1"], fd)  # a file: decompressed straight into it
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        assert f.read() == data
    back = stores("back")
    assert do_load(back, data)[0].image_id == image
    assert os.listdir(s.tmp_dir) == []  # scratch files are gone


def test_cli_save_load(stores, tmp_path):
    s = stores("cli")
    image = make_image(s, [LAYER_A], "cli/app:1")
    lamina = [sys.executable, "-m", "lamina", "--root", s.root]
    out = tmp_path / "out.tar"
    p = subprocess.run(lamina + ["save", "-o", str(out), "cli/app:1"], capture_output=True)
    assert p.returncode == 0, p.stderr
    piped = subprocess.run(lamina + ["save", "cli/app:1"], capture_output=True)
    assert piped.stdout == out.read_bytes()
    root2 = str(tmp_path / "cli2")
    p = subprocess.run([sys.executable, "-m", "lamina", "--root", root2, "load", "-i", str(out)], capture_output=True)
    assert p.returncode == 0 and p.stdout.decode() == "Loaded image: cli/app:1\n", p.stderr
    p = subprocess.run([sys.executable, "-m", "lamina", "--root", root2 + "b", "load", "-q"],
                       input=gzip.compress(out.read_bytes()), capture_output=True)
    assert p.stdout.decode() == "Loaded image: cli/app:1\n", p.stderr
    p = subprocess.run(lamina + ["save", "-o", str(tmp_path / "x.tar"), "nosuch:1"], capture_output=True)
    assert p.returncode == 1 and p.stderr.decode() == "Error response from daemon: No such image: nosuch:1\n"
    assert not (tmp_path / "x.tar").exists() and [f for f in os.listdir(tmp_path) if f.startswith(".x.tar")] == []
    p = subprocess.run(lamina + ["load", "-i", str(tmp_path / "missing.tar")], capture_output=True)
    assert p.returncode == 1 and b"Traceback" not in p.stderr
    assert System(root2).images.resolve("cli/app:1").id == image


def v20_archive(layers: list[bytes], config: bytes, tags: list[str], *, duplicate_link: bool = True) -> bytes:
    """The legacy `docker save` layout (v20.10): <v1id>/layer.tar, <id>.json, manifest.json."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        def add(name, data=None, link=None):
            ti = tarfile.TarInfo(name)
            if link:
                ti.type, ti.linkname = tarfile.SYMTYPE, link
                tf.addfile(ti)
            elif data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))

        paths, seen = [], {}
        for i, layer in enumerate(layers):
            v1 = hashlib.sha256(f"v1-{i}".encode()).hexdigest()
            add(v1)
            add(f"{v1}/VERSION", b"1.0")
            add(f"{v1}/json", b"{}")
            if duplicate_link and layer in seen:
                add(f"{v1}/layer.tar", link=f"../{seen[layer]}/layer.tar")
            else:
                add(f"{v1}/layer.tar", layer)
                seen[layer] = v1
            paths.append(f"{v1}/layer.tar")
        cid = hashlib.sha256(config).hexdigest()
        add(f"{cid}.json", config)
        add("manifest.json", json.dumps([{"Config": f"{cid}.json", "RepoTags": tags, "Layers": paths}]).encode())
        add("repositories", b"{}")
    return buf.getvalue()


def v20_config(layers) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                       "rootfs": {"type": "layers", "diff_ids": [sha256(l) for l in layers]}}).encode()


def test_load_v20_layout_with_duplicate_layers(stores):
    layers = [LAYER_A, LAYER_B, LAYER_A]
    config = v20_config(layers)
    s = stores("v20")
    loaded = do_load(s, v20_archive(layers, config, ["legacy:1"]))
    assert loaded[0].image_id.value == sha256(config)
    assert s.images.resolve("legacy:1").id.value == sha256(config)
    assert_store_ok(s)


def test_load_oci_layout_archive(stores):
    src = stores("src")
    make_image(src, [LAYER_A], "ocisrc:1")
    data = save_bytes(src, ["ocisrc:1"])
    # keep only the OCI layout (drop docker's manifest.json/repositories), gzip the layer blob
    buf = io.BytesIO()
    gz = gzip.compress(LAYER_A, mtime=0)
    with tarfile.open(fileobj=io.BytesIO(data)) as old, tarfile.open(fileobj=buf, mode="w") as new:
        index = json.loads(old.extractfile("index.json").read())
        mdesc = index["manifests"][0]
        manifest = json.loads(old.extractfile(f"blobs/sha256/{mdesc['digest'][7:]}").read())
        manifest["layers"][0] = {"mediaType": oci.OCI_LAYER_GZIP, "digest": sha256(gz), "size": len(gz)}
        raw = json.dumps(manifest).encode()
        index["manifests"] = [{"mediaType": oci.OCI_MANIFEST, "digest": sha256(raw), "size": len(raw),
                               "annotations": {"io.containerd.image.name": "docker.io/library/fromoci:2"}}]
        files = {"oci-layout": old.extractfile("oci-layout").read(), "index.json": json.dumps(index).encode(),
                 f"blobs/sha256/{sha256(raw)[7:]}": raw, f"blobs/sha256/{sha256(gz)[7:]}": gz,
                 f"blobs/sha256/{manifest['config']['digest'][7:]}":
                     old.extractfile(f"blobs/sha256/{manifest['config']['digest'][7:]}").read()}
        for name, body in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            new.addfile(ti, io.BytesIO(body))
    s = stores("oci")
    loaded = do_load(s, buf.getvalue())
    assert loaded[0].tags == (parse("fromoci:2"),)
    rec = s.images.resolve("fromoci:2")
    assert s.images.raw_manifest(rec) == raw  # the archive's manifest is kept: it names our blobs
    assert_store_ok(s)


def hostile(files: dict, links: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, body in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
        for name, target in (links or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tf.addfile(ti)
    return buf.getvalue()


@pytest.mark.parametrize("case", ["escape-name", "absolute-name", "config-outside", "link-outside",
                                  "wrong-diffid", "count-mismatch", "null-manifest", "digest-tag",
                                  "no-manifest", "not-tar", "windows"])
def test_hostile_archives(stores, case, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("host file")
    config = v20_config([LAYER_A])
    cid = sha256(config)[7:]
    ok_manifest = json.dumps([{"Config": f"{cid}.json", "RepoTags": ["h:1"], "Layers": ["l/layer.tar"]}]).encode()
    archives = {
        "escape-name": hostile({"../evil": b"x", "manifest.json": ok_manifest}),
        "absolute-name": hostile({"/etc/evil": b"x", "manifest.json": ok_manifest}),
        "config-outside": hostile({"manifest.json": json.dumps([{"Config": f"../../../..{victim}", "RepoTags": [],
                                                                 "Layers": []}]).encode()}),
        "link-outside": hostile({f"{cid}.json": config, "manifest.json": ok_manifest},
                                {"l/layer.tar": str(victim)}),
        "wrong-diffid": hostile({f"{cid}.json": config, "l/layer.tar": LAYER_B, "manifest.json": ok_manifest}),
        "count-mismatch": hostile({f"{cid}.json": config, "l/layer.tar": LAYER_A, "manifest.json": json.dumps(
            [{"Config": f"{cid}.json", "RepoTags": [], "Layers": ["l/layer.tar", "l/layer.tar"]}]).encode()}),
        "null-manifest": hostile({"manifest.json": b"null"}),
        "digest-tag": hostile({f"{cid}.json": config, "l/layer.tar": LAYER_A, "manifest.json": json.dumps(
            [{"Config": f"{cid}.json", "RepoTags": ["h@sha256:" + "a" * 64], "Layers": ["l/layer.tar"]}]).encode()}),
        "no-manifest": hostile({"repositories": b"{}"}),
        "not-tar": b"this is not a tar archive at all" * 100,
        "windows": hostile({f"{sha256(c := config.replace(b'linux', b'windows'))[7:]}.json": c, "l/layer.tar": LAYER_A,
                            "manifest.json": json.dumps([{"Config": f"{sha256(c)[7:]}.json", "RepoTags": [],
                                                          "Layers": ["l/layer.tar"]}]).encode()}),
    }
    s = stores("h")
    with pytest.raises(InvalidArchive) as e:
        do_load(s, archives[case])
    assert "\n" not in str(e.value)
    assert s.images.list() == []
    with pytest.raises(NoSuchImage):
        s.images.resolve("h:1")
    assert victim.read_text() == "host file"
    if case == "wrong-diffid":
        assert "invalid diffID for layer 0" in str(e.value)
        assert not s.content.has(Digest(sha256(LAYER_B)))
    assert_store_ok(s)
