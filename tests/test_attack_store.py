"""Attacks on the store (issue 8): prune racing the commands that make images,
corrupt blobs passed on by save and push, a world-readable store, output paths
that are device nodes, deeply nested JSON, a read-only store and a database
locked past the busy timeout.

Every command runs as its own process.  The race tests stop a writer just
before it publishes its image (a patched ImageStore.create in that process),
run `system prune` as another process, then let the writer finish: without
leases the prune deleted the new image's blobs while every command exited 0.
After every fault, `lamina system check` must pass.

The cases on `bb_both`/`container` (output paths that are links, devices, sockets; the
planted temp link; store modes; nested JSON in `load`) run twice: lamina as root and as a
rootless test user (issue 16, rootless_fixtures), with nothing written outside the user's
store.  The others stay root's: the races and the locked database patch lamina's functions
in its process (python -c), the corrupt-blob and nested-config cases write into the store as
root behind lamina's back, and the read-only store is a bind mount made by root.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest

from conftest import requires_root
from registry_fixtures import registry, proxy, docker_config  # noqa: F401 - pytest fixtures
from registry_fixtures import RegistryServer, sha256, tar_bytes
from rootless_fixtures import attack_user, bb_tar, confined, runner, store  # noqa: F401 - pytest fixtures
from rootless_fixtures import Store
from test_cli_core import LAMINA, out
from test_cli_core import lamina as _lamina

pytestmark = requires_root


def lamina(root, *args, input=None, check=True, timeout=120):
    """On a Store (the cases parametrised root | rootless, rootless_fixtures) or a path (root)."""
    if isinstance(root, Store):
        return root.lamina(*args, input=input, check=check, timeout=timeout)
    return _lamina(root, *args, input=input, check=check, timeout=timeout)


def check_ok(root) -> None:
    p = lamina(root, "system", "check", check=False)
    assert p.returncode == 0, out(p) + p.stderr.decode()
    for d in ("ingest", "tmp"):
        assert os.listdir(root / d) == [], f"{d} has leftovers"


def one_line_error(p) -> str:
    err = p.stderr.decode().strip()
    assert p.returncode != 0, (out(p), err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# -- Medium 7: prune beside a writer ------------------------------------------------------
PAUSED = textwrap.dedent("""
    import os, sys, time
    import lamina.store.images as images
    real = images.ImageStore.create
    def create(self, *a, **k):
        open(os.environ["LAMINA_TEST_READY"], "w").close()
        while not os.path.exists(os.environ["LAMINA_TEST_GO"]):
            time.sleep(0.02)
        return real(self, *a, **k)
    images.ImageStore.create = create
    from lamina.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


class Paused:
    """A lamina command in its own process, stopped just before it publishes an image."""

    def __init__(self, tmp_path, root, *args, stdin=None) -> None:
        self.ready = tmp_path / "writer-ready"
        self.go = tmp_path / "writer-go"
        env = dict(os.environ, LAMINA_TEST_READY=str(self.ready), LAMINA_TEST_GO=str(self.go))
        self.proc = subprocess.Popen([sys.executable, "-c", PAUSED, "--root", str(root), *args], env=env,
                                     stdin=stdin or subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"writer exited {self.proc.returncode}: {self.proc.stderr.read().decode()}")
            assert time.time() < deadline, "writer never reached its publish step"
            time.sleep(0.05)

    def finish(self) -> tuple[int, str, str]:
        self.go.touch()
        stdout, stderr = self.proc.communicate(timeout=180)
        return self.proc.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
def bb(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "bb:1")
    return root


@pytest.fixture
def bb_both(store, bb_tar):
    """bb's image on a store run by the parametrised runner (root, then a rootless user)."""
    lamina(store, "import", str(bb_tar), "bb:1")
    return store


def prune_beside(tmp_path, root, *args, stdin=None) -> str:
    """Run `args` paused before its publish, prune from another process, resume; -> stdout."""
    writer = Paused(tmp_path, root, *args, stdin=stdin)
    try:
        writer.wait_ready()
        prune = lamina(root, "system", "prune", "-f")
        assert "Total reclaimed space" in out(prune)
        code, stdout, stderr = writer.finish()
    finally:
        if writer.proc.poll() is None:
            writer.proc.kill()
            writer.proc.wait()
    assert code == 0, stderr
    return stdout


def assert_image_whole(tmp_path, root, name: str) -> None:
    check_ok(root)
    lamina(root, "save", "-o", str(tmp_path / "whole.tar"), name)
    assert root.joinpath("lamina.db").exists()
    rows = sqlite3.connect(root / "lamina.db").execute("SELECT COUNT(*) FROM leases").fetchone()[0]
    assert rows == 0, "a finished command left its lease behind"


def test_prune_beside_import_keeps_the_new_image(tmp_path, bb, busybox_tar):
    tar = tar_bytes({"imported.txt": b"made while pruning\n"})
    (tmp_path / "in.tar").write_bytes(tar)
    prune_beside(tmp_path, bb, "import", str(tmp_path / "in.tar"), "new:1")
    assert_image_whole(tmp_path, bb, "new:1")


def test_prune_beside_load_keeps_the_new_image(tmp_path, bb):
    other = tmp_path / "other"
    lamina(other, "import", str(_write(tmp_path / "l.tar", tar_bytes({"loaded": b"x" * 5000}))), "loaded:1")
    lamina(other, "save", "-o", str(tmp_path / "archive.tar"), "loaded:1")
    prune_beside(tmp_path, bb, "load", "-i", str(tmp_path / "archive.tar"))
    assert_image_whole(tmp_path, bb, "loaded:1")


def test_prune_beside_commit_keeps_the_new_image(tmp_path, bb):
    lamina(bb, "run", "--name", "c1", "bb:1", "sh", "-c", "echo committed > /data")
    prune_beside(tmp_path, bb, "commit", "c1", "committed:1")
    assert_image_whole(tmp_path, bb, "committed:1")
    p = lamina(bb, "run", "--rm", "committed:1", "cat", "/data")
    assert out(p) == "committed\n"


def test_prune_beside_build_keeps_the_step_layers(tmp_path, bb):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM bb:1\nRUN echo built > /built\nRUN cat /built > /again\n")
    prune_beside(tmp_path, bb, "build", "-t", "built:1", str(ctx))
    assert_image_whole(tmp_path, bb, "built:1")
    assert out(lamina(bb, "run", "--rm", "built:1", "cat", "/again")) == "built\n"


def test_prune_beside_pull_keeps_the_new_image(tmp_path, bb, registry, docker_config):
    src = tmp_path / "src"
    lamina(src, "import", str(_write(tmp_path / "p.tar", tar_bytes({"pulled": b"y" * 9000}))),
           f"{registry.host}/lease/pull:1")
    lamina(src, "push", f"{registry.host}/lease/pull:1")
    prune_beside(tmp_path, bb, "pull", f"{registry.host}/lease/pull:1")
    assert_image_whole(tmp_path, bb, f"{registry.host}/lease/pull:1")


def test_rmi_beside_pull_keeps_the_blobs_it_reuses(tmp_path, bb, registry, docker_config):
    """The pull finds the layer already stored (another image's) and skips its download;
    that image is then removed (rmi sweeps its blobs) before the pull publishes."""
    src = tmp_path / "src"
    lamina(src, "import", str(_write(tmp_path / "p.tar", tar_bytes({"shared": b"z" * 7000}))),
           f"{registry.host}/lease/shared:1")
    lamina(src, "push", f"{registry.host}/lease/shared:1")
    lamina(bb, "pull", f"{registry.host}/lease/shared:1")
    lamina(bb, "tag", f"{registry.host}/lease/shared:1", "keep:1")
    lamina(bb, "rmi", "keep:1")
    writer = Paused(tmp_path, bb, "pull", f"{registry.host}/lease/shared:1")
    try:
        # the pull re-checks the manifest, finds every blob stored and stops before publishing
        lamina(bb, "rmi", f"{registry.host}/lease/shared:1")
        writer.wait_ready()
        lamina(bb, "system", "prune", "-f")
        code, _, stderr = writer.finish()
    finally:
        if writer.proc.poll() is None:
            writer.proc.kill()
            writer.proc.wait()
    # whichever order the two took, the store is whole: the image is either complete or absent
    check_ok(bb)
    if code == 0:
        lamina(bb, "save", "-o", str(tmp_path / "s.tar"), f"{registry.host}/lease/shared:1")
    else:
        assert "Traceback" not in stderr


def test_killed_writer_lease_expires(tmp_path, bb):
    (tmp_path / "in.tar").write_bytes(tar_bytes({"orphan.txt": b"never published\n"}))
    writer = Paused(tmp_path, bb, "import", str(tmp_path / "in.tar"), "orphan:1")
    writer.wait_ready()
    db = sqlite3.connect(bb / "lamina.db")
    assert db.execute("SELECT COUNT(*) FROM lease_refs").fetchone()[0] > 0
    blobs_before = set(os.listdir(bb / "blobs/sha256"))
    writer.proc.send_signal(signal.SIGKILL)
    writer.proc.wait()
    lamina(bb, "system", "prune", "-f")
    assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM lease_refs").fetchone()[0] == 0
    assert len(os.listdir(bb / "blobs/sha256")) < len(blobs_before)  # the orphan layer is reclaimed
    check_ok(bb)
    assert "orphan" not in out(lamina(bb, "images"))


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


# -- Medium 8: corrupt blobs are not passed on ----------------------------------------------
def layer_blobs(root) -> list[str]:
    rows = sqlite3.connect(root / "lamina.db").execute("SELECT digest FROM layer_blobs").fetchall()
    return [r[0] for r in rows]


def flip_byte(root, digest: str, offset: int = 700) -> bytes:
    """One flipped byte in a stored blob (bit rot); returns the good bytes."""
    path = root / "blobs/sha256" / digest.removeprefix("sha256:")
    good = path.read_bytes()
    bad = bytearray(good)
    bad[offset % len(bad)] ^= 0x01
    os.chmod(path, 0o644)
    path.write_bytes(bytes(bad))
    os.chmod(path, 0o444)
    return good


def restore(root, digest: str, good: bytes) -> None:
    path = root / "blobs/sha256" / digest.removeprefix("sha256:")
    os.chmod(path, 0o644)
    path.write_bytes(good)
    os.chmod(path, 0o444)


def assert_names_corrupt_blob(err: str, digest: str) -> None:
    assert digest in err and "corrupted" in err and "lamina system check" in err, err


def test_save_refuses_a_corrupt_layer_blob(tmp_path, bb):
    lamina(bb, "save", "-o", str(tmp_path / "good.tar"), "bb:1")
    [digest] = layer_blobs(bb)
    flip_byte(bb, digest)
    target = tmp_path / "out.tar"
    err = one_line_error(lamina(bb, "save", "-o", str(target), "bb:1", check=False))
    assert_names_corrupt_blob(err, digest)
    assert sorted(os.listdir(tmp_path)) == sorted(["good.tar", "store"])  # no archive, no temp file
    p = subprocess.run(LAMINA + ["--root", str(bb), "save", "bb:1"], capture_output=True)
    assert_names_corrupt_blob(one_line_error(p), digest)  # to a pipe: the same error, non-zero
    assert lamina(bb, "system", "check", check=False).returncode == 1
    # loading a good copy replaces the rotten blob: the store heals
    lamina(bb, "load", "-i", str(tmp_path / "good.tar"))
    check_ok(bb)
    lamina(bb, "save", "-o", str(target), "bb:1")


def test_save_refuses_a_corrupt_compressed_blob(tmp_path, registry, docker_config):
    src, dst = tmp_path / "src", tmp_path / "dst"
    name = f"{registry.host}/corrupt/gz:1"
    lamina(src, "import", str(_write(tmp_path / "g.tar", tar_bytes({"g": os.urandom(3000) * 20}))), name)
    lamina(src, "push", name)
    lamina(dst, "pull", name)  # stored as pulled: gzip
    [digest] = layer_blobs(dst)
    good = flip_byte(dst, digest, offset=2000)
    err = one_line_error(lamina(dst, "save", "-o", str(tmp_path / "out.tar"), name, check=False))
    assert_names_corrupt_blob(err, digest)
    assert not (tmp_path / "out.tar").exists()
    restore(dst, digest, good)
    check_ok(dst)


def test_push_refuses_to_recompress_a_corrupt_layer(tmp_path, bb, registry, docker_config):
    name = f"{registry.host}/corrupt/push:1"
    lamina(bb, "tag", "bb:1", name)
    [digest] = layer_blobs(bb)
    good = flip_byte(bb, digest)
    err = one_line_error(lamina(bb, "push", name, check=False))
    assert_names_corrupt_blob(err, digest)
    assert _registry_status(registry.host, "/v2/corrupt/push/manifests/1") == 404
    assert layer_blobs(bb) == [digest]  # no compressed blob was made from the rotten one
    restore(bb, digest, good)
    check_ok(bb)
    lamina(bb, "push", name)
    assert _registry_status(registry.host, "/v2/corrupt/push/manifests/1") == 200


def test_push_refuses_a_corrupt_stored_compressed_blob(tmp_path, registry, docker_config):
    """A pulled (gzip) blob is sent as stored: to a registry that does not have it."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    name = f"{registry.host}/corrupt/src:1"
    lamina(src, "import", str(_write(tmp_path / "g.tar", tar_bytes({"h": os.urandom(4000)}))), name)
    lamina(src, "push", name)
    lamina(dst, "pull", name)
    [digest] = layer_blobs(dst)
    good = flip_byte(dst, digest, offset=1500)
    (tmp_path / "reg2").mkdir()
    other = RegistryServer(tmp_path / "reg2")
    try:
        lamina(dst, "tag", name, f"{other.host}/corrupt/other:1")
        err = one_line_error(lamina(dst, "push", f"{other.host}/corrupt/other:1", check=False))
        assert_names_corrupt_blob(err, digest)
        assert _registry_status(other.host, "/v2/corrupt/other/manifests/1") == 404
        assert _registry_status(other.host, f"/v2/corrupt/other/blobs/{digest}") == 404
    finally:
        other.stop()
    restore(dst, digest, good)
    check_ok(dst)


def _registry_status(host: str, path: str) -> int:
    import http.client

    c = http.client.HTTPConnection(host, timeout=10)
    c.request("HEAD", path, headers={"Accept": "application/vnd.oci.image.manifest.v1+json,"
                                               "application/vnd.docker.distribution.manifest.v2+json"})
    status = c.getresponse().status
    c.close()
    return status


# -- Low 13: the store is private ---------------------------------------------------------
def test_store_modes_new_and_fixed_on_open(bb_both):
    root = bb_both
    private = ("blobs", "blobs/sha256", "ingest", "tmp", "layers", "l", "locks", "containers")

    def modes():
        return ({"": stat.S_IMODE(os.stat(root).st_mode)}
                | {d: stat.S_IMODE(os.stat(root / d).st_mode) for d in private}
                | {"lamina.db": stat.S_IMODE(os.stat(root / "lamina.db").st_mode)})

    lamina(root, "ps", "-a")  # containers/ is made on first use
    want = {"": 0o711, "lamina.db": 0o600} | {d: 0o700 for d in private}
    assert modes() == want
    # a store made world-readable (an older lamina, a careless chmod) is fixed on open
    for d in ("",) + private:
        os.chmod(root / d, 0o755)
    os.chmod(root / "lamina.db", 0o644)
    lamina(root, "images")
    assert modes() == want
    check_ok(root)


# -- Low 16: output paths that are not regular files --------------------------------------
@pytest.fixture
def container(bb_both):
    lamina(bb_both, "create", "--name", "exp", "bb:1", "true")
    return bb_both


@pytest.mark.parametrize("verb", ["save", "export"])
@pytest.mark.parametrize("kind", ["chardev", "fifo", "directory", "symlink", "socket"])
def test_output_path_that_is_not_a_regular_file_is_refused(tmp_path, container, verb, kind):
    import socket

    target = tmp_path / "target"
    made = {"chardev": "a character device file", "fifo": "a named pipe (FIFO)", "directory": "a directory",
            "symlink": "a symbolic link directly", "socket": "a socket"}
    if kind == "chardev":
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # our own /dev/null
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    elif kind == "symlink":
        (tmp_path / "victim").write_bytes(b"keep me\n")
        target.symlink_to(tmp_path / "victim")
    else:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(target))
        s.close()
    before = os.lstat(target)
    what = ["save", "-o", str(target), "bb:1"] if verb == "save" else ["export", "-o", str(target), "exp"]
    p = lamina(container, *what, check=False, timeout=30)
    err = one_line_error(p)
    failed = "failed to save image" if verb == "save" else "failed to export container"
    assert err == f"{failed}: cannot write to {made[kind]}"  # docker 20.10's exact line
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    if kind == "symlink":
        assert (tmp_path / "victim").read_bytes() == b"keep me\n"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".target")]
    check_ok(container)


@pytest.mark.parametrize("verb", ["save", "export"])
def test_output_missing_directory(tmp_path, container, verb):
    target = tmp_path / "nodir" / "x.tar"
    what = ["save", "-o", str(target), "bb:1"] if verb == "save" else ["export", "-o", str(target), "exp"]
    err = one_line_error(lamina(container, *what, check=False))
    failed = "failed to save image" if verb == "save" else "failed to export container"
    assert err == f"{failed}: invalid output path: stat {tmp_path / 'nodir'}: no such file or directory"


def test_export_replaces_a_regular_file_through_a_private_temp(tmp_path, container):
    """A planted link at the predictable temp name export used must not redirect the write."""
    target = tmp_path / "out.tar"
    target.write_bytes(b"old archive\n")
    victim = tmp_path / "victim"
    victim.write_bytes(b"host file\n")
    os.symlink(victim, f"{target}.lamina-tmp")
    lamina(container, "export", "-o", str(target), "exp")
    assert victim.read_bytes() == b"host file\n"
    assert os.path.isfile(target) and not os.path.islink(target)
    with tarfile.open(target) as tf:
        assert "bin/busybox" in tf.getnames()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644 & ~_umask()
    check_ok(container)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- Low 11: nested JSON, read-only store, locked database ----------------------------------
def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("where", ["manifest.json", "index.json", "config"])
def test_load_deeply_nested_json(tmp_path, bb_both, where):
    bb = bb_both
    layer = tar_bytes({"a": b"a"})
    if where == "manifest.json":
        members = {"manifest.json": nested(100_000)}
    elif where == "index.json":
        members = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
                   "index.json": b'{"schemaVersion":2,"manifests":' + nested(100_000) + b"}"}
    else:
        config = b'{"os":"linux","rootfs":{"type":"layers","diff_ids":["' + sha256(layer).encode() + b'"]},' \
                 b'"x":' + nested(100_000) + b"}"
        members = {"config.json": config, "layer.tar": layer,
                   "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": ["deep:1"],
                                                 "Layers": ["layer.tar"]}]).encode()}
    p = lamina(bb, "load", input=archive(members), check=False)
    err = one_line_error(p)
    assert "nested" in err, err
    assert "deep" not in out(lamina(bb, "images"))
    check_ok(bb)


@pytest.mark.parametrize("where", ["manifest", "error body"])
def test_pull_deeply_nested_json(tmp_path, bb, proxy, docker_config, where):
    def deep(ex):
        if "/manifests/" not in ex.path:
            return False
        if where == "manifest":
            ex.respond(200, b'{"schemaVersion":2,"config":' + nested(100_000) + b"}",
                       {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        else:
            ex.respond(404, b'{"errors":' + nested(30_000) + b"}", {"Content-Type": "application/json"})  # < 64 KiB
        return True

    proxy.fault = deep
    err = one_line_error(lamina(bb, "pull", f"{proxy.host}/deep/json:1", check=False))
    assert ("nested more than 64 levels" in err) if where == "manifest" else (proxy.host in err), err
    check_ok(bb)


def test_inspect_of_a_stored_deeply_nested_config(tmp_path, bb):
    """A config stored before nesting was checked (or by another tool)."""
    from lamina import oci
    from lamina.digest import Digest
    from lamina.system import System

    layer_digest = layer_blobs(bb)[0]
    config = (b'{"os":"linux","rootfs":{"type":"layers","diff_ids":["' + layer_digest.encode()
              + b'"]},"config":{"Labels":{"x":' + nested(5000).replace(b"[]", b"[1]", 1) + b"}}}")
    s = System(str(bb))
    try:
        cid = s.content.put_bytes(config)
        manifest = oci.dumps(oci.make_manifest(oci.Descriptor(oci.OCI_CONFIG, cid, len(config)),
                                               [oci.Descriptor(oci.OCI_LAYER, Digest(layer_digest), 1)]))
        mid = s.content.put_bytes(manifest)
        with s.db:
            s.db.execute("INSERT INTO images(id, manifest, parent, created, size, added) VALUES (?,?,?,?,?,?)",
                         (str(cid), str(mid), None, 0, 0, 0))
            s.db.execute("INSERT INTO tags(name, image_id, tagged) VALUES (?,?,?)",
                         ("docker.io/library/deep:1", str(cid), 0))
    finally:
        s.close()
    for verb in (["inspect", "deep:1"], ["history", "deep:1"], ["save", "-o", str(tmp_path / "d.tar"), "deep:1"]):
        err = one_line_error(lamina(bb, *verb, check=False))
        assert "nested" in err, (verb, err)
    lamina(bb, "rmi", "deep:1")
    check_ok(bb)


def test_read_only_store(tmp_path, bb, busybox_tar):
    subprocess.run(["mount", "--bind", str(bb), str(bb)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(bb)], check=True)
        for verb in (["import", str(busybox_tar), "ro:1"], ["tag", "bb:1", "ro:2"], ["images"]):
            err = one_line_error(lamina(bb, *verb, check=False))
            assert str(bb) in err and "read-only file system" in err, (verb, err)
    finally:
        subprocess.run(["umount", str(bb)], check=True)
    assert out(lamina(bb, "images", "--format", "{{.Repository}}:{{.Tag}}")).split() == ["bb:1"]
    check_ok(bb)


LOCKED = textwrap.dedent("""
    import sys
    import lamina.store.db as db
    db.BUSY_TIMEOUT = 1.0
    from lamina.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("verb", ["tag", "import", "rmi", "prune"])
def test_database_locked_past_the_busy_timeout(tmp_path, bb, busybox_tar, verb):
    args = {"tag": ["tag", "bb:1", "other:1"], "import": ["import", str(busybox_tar), "other:1"],
            "rmi": ["rmi", "bb:1"], "prune": ["system", "prune", "-f"]}[verb]
    holder = sqlite3.connect(bb / "lamina.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        p = subprocess.run([sys.executable, "-c", LOCKED, "--root", str(bb), *args], capture_output=True,
                           timeout=120)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = one_line_error(p)
    assert str(bb) in err and "locked" in err, err
    names = out(lamina(bb, "images", "--format", "{{.Repository}}:{{.Tag}}")).split()
    assert names == ["bb:1"]
    check_ok(bb)
