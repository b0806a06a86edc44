"""A build cache shared through a registry (issue 15): `build --cache-to/--cache-from`.

Two stores (`--root A`, `--root B`: two CI runners) and a loopback registry.  A
builds and exports its steps; B, cold, imports them: every step hits, the RUN
does not run (its layer holds a random value A wrote, and B's image has A's
value), the image IDs are equal.  Editing one context file misses from its COPY
step on; two exports at once both succeed; a registry answering 500 to cache
writes gives a warning and a good image; `type=local` (an OCI layout) works the
same; `--cache-ttl` drops old entries; bad values fail with buildx's texts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import requires_root
from registry_fixtures import TamperProxy, registry  # noqa: F401  (fixture)

LAMINA = [sys.executable, "-m", "lamina"]
EPOCH = "1500000000"  # the base image is imported with it in both stores: the same ID
DOCKERFILE = """FROM base
ARG V=1
COPY a.txt /a.txt
RUN cat /proc/sys/kernel/random/uuid > /stamp && echo RAN-THE-STEP
ENV X=$V
COPY b.txt /b.txt
RUN cat /proc/sys/kernel/random/uuid > /stamp2 && echo RAN-THE-STEP
"""
STEPS = 7

pytestmark = requires_root


def lamina(root, *args, check=True, timeout=240):
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)
    p = subprocess.run(LAMINA + ["--root", str(root)] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def store(tmp_path, name, busybox_tar):
    root = tmp_path / name
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    subprocess.run(LAMINA + ["--root", str(root), "import", str(busybox_tar), "base:latest"], check=True,
                   capture_output=True, env=env, timeout=120)
    return root


def context(path, dockerfile=DOCKERFILE, b="b\n"):
    path.mkdir()
    (path / "Dockerfile").write_text(dockerfile)
    (path / "a.txt").write_text("a\n")
    (path / "b.txt").write_text(b)
    return path


def image_id(root, name="out:1") -> str:
    return lamina(root, "inspect", "--type", "image", "--format", "{{.Id}}", name).stdout.strip()


def cat(root, path, name="out:1") -> str:
    return lamina(root, "run", "--rm", name, "cat", path).stdout


def tags(host, repo) -> list[str]:
    with urllib.request.urlopen(f"http://{host}/v2/{repo}/tags/list", timeout=10) as r:
        return json.load(r)["tags"] or []


def ran(out: str) -> int:
    """How many RUN steps ran (each prints the marker on a line of its own)."""
    return out.splitlines().count("RAN-THE-STEP")


def results(out: str) -> list[str]:
    """Per step after FROM: 'hit' or 'miss', from the classic log."""
    steps = out.split("\nStep ")[2:]
    return ["hit" if " ---> Using cache" in s else "miss" for s in steps]


def test_a_fleet_shares_steps_through_the_registry(tmp_path, busybox_tar, registry):
    ref = f"{registry.host}/fleet/cache-a"
    a, b, c = (store(tmp_path, n, busybox_tar) for n in "ABC")
    assert image_id(a, "base") == image_id(b, "base"), "precondition: the same base image on both runners"
    ctx = context(tmp_path / "ctx")
    made = lamina(a, "build", "--cache-to", f"type=registry,ref={ref},mode=max", "-t", "out:1", ctx)
    assert ran(made.stdout) == 2
    assert "[Warning]" not in made.stdout
    cache_tags = tags(registry.host, "fleet/cache-a")
    assert len(cache_tags) == STEPS - 1 and all(t.startswith("cache-") and len(t) == 70 for t in cache_tags)

    # B, cold: every step hits, no RUN runs, the image (and the RUN's random value) is A's
    got = lamina(b, "build", "--cache-from", f"type=registry,ref={ref}", "-t", "out:1", ctx)
    assert results(got.stdout) == ["hit"] * (STEPS - 1), got.stdout
    assert ran(got.stdout) == 0 and "Running in" not in got.stdout
    assert image_id(b) == image_id(a)
    assert cat(b, "/stamp") == cat(a, "/stamp")  # the layers arrived and unpack in B
    assert "ok" in lamina(b, "system", "check").stdout

    # C: one edited context file misses from its COPY step on (the steps before still hit)
    ctx2 = context(tmp_path / "ctx2", b="changed\n")
    got = lamina(c, "build", "--cache-from", ref, "-t", "out:1", ctx2)  # a bare value is a registry ref
    assert results(got.stdout) == ["hit", "hit", "hit", "hit", "miss", "miss"], got.stdout
    assert ran(got.stdout) == 1
    assert cat(c, "/stamp") == cat(a, "/stamp")
    assert cat(c, "/b.txt") == "changed\n"


def test_probing_goes_on_after_a_miss(tmp_path, busybox_tar, registry):
    """An ARG value only the RUN reads: its ARG step misses, but (SOURCE_DATE_EPOCH) makes
    the same image again, so the COPY after it still hits; the RUN that reads it misses."""
    ref = f"{registry.host}/fleet/probe"
    a, b = (store(tmp_path, n, busybox_tar) for n in "AB")
    ctx = context(tmp_path / "ctx", "FROM base\nARG V\nCOPY a.txt /a.txt\nRUN echo $V > /v && echo RAN-THE-STEP\n")
    epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"]
    lamina(a, "build", *epoch, "--build-arg", "V=1", "--cache-to", ref, "-t", "out:1", ctx)
    got = lamina(b, "build", *epoch, "--build-arg", "V=2", "--cache-from", ref, "-t", "out:1", ctx)
    assert results(got.stdout) == ["miss", "hit", "miss"], got.stdout
    assert cat(b, "/v") == "2\n"
    # without a shared cache the classic rule stays: no lookups after a miss
    got = lamina(b, "build", *epoch, "--build-arg", "V=3", "-t", "out:1", ctx)
    assert results(got.stdout) == ["miss", "miss", "miss"], got.stdout


def test_the_registry_holds_ordinary_annotated_image_manifests(tmp_path, busybox_tar, registry):
    ref = f"{registry.host}/fleet/cache-doc"
    a = store(tmp_path, "A", busybox_tar)
    lamina(a, "build", "--cache-to", f"type=registry,ref={ref}", "-t", "out:1", context(tmp_path / "ctx"))
    final = image_id(a)
    docs = []
    for tag in tags(registry.host, "fleet/cache-doc"):
        req = urllib.request.Request(f"http://{registry.host}/v2/fleet/cache-doc/manifests/{tag}",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            docs.append((tag, json.load(r)))
    by_config = {d["config"]["digest"]: (t, d) for t, d in docs}
    tag, doc = by_config[final]  # the final step's manifest is the image itself (same config, same ID)
    notes = doc["annotations"]
    assert tag == "cache-" + notes["dev.lamina.cache.key"]
    assert notes["dev.lamina.cache.instruction"].startswith("RUN cat /proc")
    assert notes["dev.lamina.cache.parent"] in by_config  # the chain is in the cache too
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    # layers go gzip-compressed (BuildKit's default), compression=uncompressed as stored
    assert {l["mediaType"] for l in doc["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    lamina(a, "build", "--cache-to", f"type=registry,ref={ref}-plain,compression=uncompressed", "-t", "out:1",
           tmp_path / "ctx")
    plain = tags(registry.host, "fleet/cache-doc-plain")
    assert len(plain) == len(docs)


def test_min_mode_exports_only_the_final_image_steps(tmp_path, busybox_tar, registry):
    dockerfile = ("FROM base AS tools\nRUN echo tool > /tool\n"
                  "FROM base\nCOPY a.txt /a.txt\nCOPY --from=tools /tool /tool\n")
    a = store(tmp_path, "A", busybox_tar)
    ctx = context(tmp_path / "ctx", dockerfile)
    lamina(a, "build", "--cache-to", f"type=registry,ref={registry.host}/fleet/min", "-t", "out:1", ctx)
    lamina(a, "build", "--cache-to", f"type=registry,ref={registry.host}/fleet/max,mode=max", "-t", "out:1", ctx)
    small, full = set(tags(registry.host, "fleet/min")), set(tags(registry.host, "fleet/max"))
    assert len(small) == 2 and len(full) == 3 and small < full


def test_two_concurrent_exports_both_succeed(tmp_path, busybox_tar, registry):
    ref = f"{registry.host}/fleet/shared"
    roots = [store(tmp_path, n, busybox_tar) for n in "AB"]
    ctxs = [context(tmp_path / "ctx1"), context(tmp_path / "ctx2", DOCKERFILE.replace("ARG V=1", "ARG V=2"))]

    def build(i):
        return lamina(roots[i], "build", "--cache-to", f"type=registry,ref={ref},mode=max", "-t", "out:1", ctxs[i])

    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(build, range(2)))
    assert all("[Warning]" not in o.stdout for o in outs)
    c = store(tmp_path, "C", busybox_tar)
    for i in range(2):  # each runner's steps are all there
        got = lamina(c, "build", "--cache-from", ref, "-t", f"out:{i}", ctxs[i])
        assert results(got.stdout) == ["hit"] * (STEPS - 1), got.stdout
        assert image_id(c, f"out:{i}") == image_id(roots[i])


def test_a_failing_registry_is_a_warning_and_the_image_is_good(tmp_path, busybox_tar, registry):
    proxy = TamperProxy(registry.host)
    try:
        def fail_writes(ex):
            if ex.method in ("POST", "PUT", "PATCH"):
                ex.respond(500, b'{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}',
                           {"Content-Type": "application/json"})
                return True
            return False

        proxy.fault = fail_writes
        a = store(tmp_path, "A", busybox_tar)
        got = lamina(a, "build", "--cache-to", f"type=registry,ref={proxy.host}/fleet/broken", "-t", "out:1",
                     context(tmp_path / "ctx"))
        assert f"[Warning] failed to export cache to {proxy.host}/fleet/broken" in got.stdout
        assert "disk on fire" in got.stdout
        assert "Successfully tagged out:1" in got.stdout
        assert cat(a, "/a.txt") == "a\n"

        # and one that fails every read: a cold build, a warning, a good image
        proxy.fault = lambda ex: ex.respond(500, b"{}") or True
        b = store(tmp_path, "B", busybox_tar)
        got = lamina(b, "build", "--cache-from", f"{proxy.host}/fleet/broken", "-t", "out:1",
                     context(tmp_path / "ctx2"))
        assert "[Warning] failed to read cache from" in got.stdout
        assert ran(got.stdout) == 2
        assert cat(b, "/b.txt") == "b\n"
    finally:
        proxy.stop()


def test_local_layout_cache_and_ttl(tmp_path, busybox_tar):
    a, b, c = (store(tmp_path, n, busybox_tar) for n in "ABC")
    ctx = context(tmp_path / "ctx")
    layout = tmp_path / "layout"
    lamina(a, "build", "--cache-to", f"type=local,dest={layout},mode=max", "-t", "out:1", ctx)
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == STEPS - 1
    got = lamina(b, "build", "--cache-from", f"type=local,src={layout}", "--cache-ttl", "1h", "-t", "out:1", ctx)
    assert results(got.stdout) == ["hit"] * (STEPS - 1)
    assert image_id(b) == image_id(a)
    # entries written longer ago than the TTL are not used
    got = lamina(c, "build", "--cache-from", f"type=local,src={layout}", "--cache-ttl", "1ms", "-t", "out:1", ctx)
    assert results(got.stdout) == ["miss"] * (STEPS - 1)


def test_concurrent_exports_into_one_layout_directory(tmp_path, busybox_tar):
    layout = tmp_path / "layout"
    roots = [store(tmp_path, n, busybox_tar) for n in "AB"]
    ctxs = [context(tmp_path / "ctx1"), context(tmp_path / "ctx2", DOCKERFILE.replace("ARG V=1", "ARG V=2"))]
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda i: lamina(roots[i], "build", "--cache-to", f"type=local,dest={layout},mode=max",
                                              "-t", "out:1", ctxs[i]), range(2)))
    assert all("[Warning]" not in o.stdout for o in outs)
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == 2 * (STEPS - 1)  # the index was merged, not overwritten


@pytest.mark.parametrize("flags, text", [
    (["--cache-to", "type=bogus"], 'unknown cache exporter: "bogus"'),
    (["--cache-from", "type=bogus,ref=x"], 'unknown cache importer: "bogus"'),
    (["--cache-to", "ref=x,mode=max"], 'type required for "ref=x,mode=max"'),
    (["--cache-to", "type=registry,ref"], "invalid value ref"),
    (["--cache-to", "type=local"], "local cache exporter requires dest"),
    (["--cache-from", "type=local"], "local cache importer requires src"),
    (["--cache-to", "type=registry,ref=r,mode=all"], "invalid cache mode: all"),
    (["--cache-to", "type=registry,ref=UPPER/x"], "invalid reference format"),
    (["--cache-ttl", "5x"], 'time: invalid duration "5x"'),
    (["--cache-to", "type=registry,ref=r,compression=lz4"], "unsupported compression 'lz4'"),
])
def test_bad_values_fail_before_the_build(tmp_path, flags, text):
    p = lamina(tmp_path / "S", "build", *flags, tmp_path, check=False)
    assert p.returncode != 0 and text in p.stderr, p.stderr
    assert "Sending build context" not in p.stdout
