"""Attack tests, issue 8 items 1, 2 and 9: what a build reads from its context.

* High 1: a symlink in the middle of a source path (COPY, ADD of an archive, a
  context tar on stdin, a RUN --mount=type=bind source, COPY --from) must be
  resolved inside its root, never on the host.  Docker 20.10 (classic and BuildKit)
  re-roots such links at the context root: `link -> /etc` makes `link/hostname` the
  context's own `etc/hostname`, or "file not found in build context".
* High 2: the Dockerfile (and .dockerignore) is read inside the context: a link to a
  host file is "Cannot locate specified Dockerfile" (the daemon's words) and none of
  its content is ever printed; `alias -> .` cannot bring an ignored file in.
* Medium 9: a COPY/ADD source swapped between the cache-key hash and the copy must
  not leave an image under the other content's key.

Images are read back with `lamina save` (no container needed).  Every failing build
must leave the store sound (`lamina system check`).

Each case runs twice (rootless_fixtures.runner): lamina as root, and as a rootless test
user (issue 16), with the same assertions, and as the user nothing may be written outside
its store (`confined`).  The two swap cases hook lamina's own functions in its process
(python -c) and stay root's."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import requires_root
from rootless_fixtures import attack_user, confined, runner  # noqa: F401 - pytest fixtures
from rootless_fixtures import Runner, Store, fingerprint, readable_copy
from test_build_exec import ctx

pytestmark = requires_root

HOST_SECRET = "host-secret-7f3a9c"  # planted outside every context; must never reach an image or a message


def lamina(root: Store, *args, input=None, check=True):
    return root.lamina(*args, input=input, check=check)


def build(root: Store, d, *flags, check=True):
    return lamina(root, "build", *flags, d, check=check)


def _store(runner: Runner, parent: Path, busybox_tar: Path) -> Store:
    store = Store(runner.new_store(parent, module=True), runner)
    lamina(store, "import", readable_copy(busybox_tar, parent / "in"), "base:latest")
    return store


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar, runner):
    return _store(runner, tmp_path_factory.mktemp(f"attack-context-{runner.name}"), busybox_tar)


@pytest.fixture(scope="module")
def root_only(tmp_path_factory, busybox_tar):
    """Root's store for the cases that hook lamina's functions inside its process."""
    return _store(Runner(None), tmp_path_factory.mktemp("attack-context-hooked"), busybox_tar)


@pytest.fixture(autouse=True)
def _confined(request):
    """Cases on the parametrised store: as the user, nothing written outside its store."""
    if "root" in request.fixturenames:
        request.getfixturevalue("confined")
    yield


@pytest.fixture
def host_dir(request, tmp_path) -> Path:
    """A directory outside the context, standing for the building host's files."""
    d = tmp_path / "host"
    (d / "sub").mkdir(parents=True)
    (d / "secret").write_text(HOST_SECRET + "\n")
    (d / "sub" / "secret").write_text(HOST_SECRET + "\n")
    (d / "Dockerfile").write_text(f"{HOST_SECRET} line one\nFROM base\n")
    with tarfile.open(d / "secret.tar", "w") as tf:
        data = HOST_SECRET.encode()
        ti = tarfile.TarInfo("stolen")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    if "root" in request.fixturenames:  # root's files the build must never touch, as the user too
        canaries = request.getfixturevalue("confined")
        for f in d.rglob("*"):
            if f.is_file():
                canaries[f] = fingerprint(f)
    return d


def image_files(root, image: str, tmp: Path) -> dict[str, bytes | str]:
    """Path -> content (regular files) or "->target" (links) of every layer of `image`."""
    out = tmp / f"save-{image.replace(':', '-').replace('/', '-')}.tar"
    lamina(root, "save", "-o", out, image)
    files: dict[str, bytes | str] = {}
    with tarfile.open(out) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=archive.extractfile(layer), mode="r:*") as tf:
                for m in tf:
                    name = m.name.removeprefix("./").rstrip("/")
                    if m.isreg():
                        files[name] = tf.extractfile(m).read()
                    elif m.issym():
                        files[name] = "->" + m.linkname
    return files


def refused(root, p, *messages: str) -> str:
    """A build that failed cleanly: exit 1, one-line error, nothing of the host in it."""
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode != 0, out
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for m in messages:
        assert m in err, err
    assert HOST_SECRET not in out + err
    assert lamina(root, "system", "check").returncode == 0
    return err


# --------------------------------------------------------------------- High 1: links mid-path


@pytest.mark.parametrize("source,why", [
    ("link/secret", "file not found in build context"),
    ("link/sub/secret", "file not found in build context"),
    ("up/HOST/secret", "file not found in build context"),   # up -> ../..: `..` stops at the root
])
def test_copy_source_through_a_link_out_of_the_context(root, tmp_path, host_dir, source, why):
    source = source.replace("HOST", str(host_dir).lstrip("/"))  # on the host, up/HOST is host_dir
    d = ctx(tmp_path, f"FROM base\nCOPY {source} /out/\n")
    os.symlink(host_dir, d / "link")
    os.symlink("../" * len(d.parts), d / "up")
    p = build(root, d, check=False)
    refused(root, p, "Dockerfile:2", why)


@pytest.mark.parametrize("source", ["link/sec*", "link/*/secret"])
def test_copy_glob_through_a_link_out_of_the_context_matches_nothing(root, tmp_path, host_dir, source):
    """A wildcard matching nothing builds (BuildKit: an empty layer); one through a link
    out of the context matches nothing, so nothing of the host reaches the image."""
    d = ctx(tmp_path, f"FROM base\nCOPY {source} /out/\n")
    os.symlink(host_dir, d / "link")
    p = build(root, d, "-t", "attack:glob", check=False)
    assert p.returncode == 0, p.stderr.decode()
    assert HOST_SECRET not in p.stdout.decode() + p.stderr.decode()
    files = image_files(root, "attack:glob", tmp_path)
    assert not any(name == "out" or name.startswith("out/") for name in files)
    assert not any(HOST_SECRET.encode() in v for v in files.values() if isinstance(v, bytes))


def test_copy_mid_path_link_is_rerooted_at_the_context_like_docker(root, tmp_path, host_dir):
    """docker (both builders) follows `link -> /etc` *inside* the context: the file is
    the context's own etc/hostname.  `alias -> sub` and `..` work as in a rootfs."""
    d = ctx(tmp_path, "FROM base\nCOPY link/hostname /a\nCOPY rel/hostname /b\nCOPY alias/f /c\nCOPY alias/ /dir/\n",
            {"etc/hostname": "context-hostname\n", "sub/f": "sub-f\n"})
    os.symlink("/etc", d / "link")
    os.symlink("../../../../etc", d / "rel")
    os.symlink("sub", d / "alias")
    build(root, d, "-t", "attack:reroot")
    files = image_files(root, "attack:reroot", tmp_path)
    assert files["a"] == files["b"] == b"context-hostname\n"
    assert files["c"] == files["dir/f"] == b"sub-f\n"


def test_add_archive_through_a_link_out_of_the_context(root, tmp_path, host_dir):
    d = ctx(tmp_path, "FROM base\nADD link/secret.tar /x/\n")
    os.symlink(host_dir, d / "link")
    refused(root, build(root, d, check=False), "Dockerfile:2", "file not found in build context")


def test_stdin_tar_context_with_a_link_mid_path(root, tmp_path, host_dir):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        df = b"FROM base\nCOPY link/secret /out\n"
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(df)
        tf.addfile(ti, io.BytesIO(df))
        ti = tarfile.TarInfo("link")
        ti.type, ti.linkname = tarfile.SYMTYPE, str(host_dir)
        tf.addfile(ti)
    p = lamina(root, "build", "-", input=buf.getvalue(), check=False)
    refused(root, p, "Dockerfile:2", "file not found in build context")


def test_bind_mount_source_through_a_link_out_of_the_context(root, tmp_path, host_dir):
    d = ctx(tmp_path, "FROM base\nRUN --mount=type=bind,source=link/sub,target=/m cat /m/secret > /copied\n")
    os.symlink(host_dir, d / "link")
    p = build(root, d, check=False)
    refused(root, p, "Dockerfile:2", '"/link/sub": not found')
    assert "Running in" not in p.stdout.decode()  # refused before anything ran


def test_copy_from_an_image_follows_links_inside_its_root(root, tmp_path, host_dir):
    """COPY --from: links in the image are re-rooted in the image's rootfs (as before)."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "secret").write_text("image-secret\n")
    os.symlink(str(host_dir), rootfs / "abs")          # /abs/secret -> the image's own path
    os.symlink("../../../../../..", rootfs / "up")     # /up/etc/secret -> /etc/secret of the image
    tar = tmp_path / "evil.tar"
    with tarfile.open(tar, "w") as tf:
        for entry in sorted(rootfs.iterdir()):
            tf.add(entry, arcname=entry.name)
    lamina(root, "import", tar, "attack:evil-image")
    d = ctx(tmp_path / "c", "FROM base\nCOPY --from=attack:evil-image /up/etc/secret /x\n")
    build(root, d, "-t", "attack:from")
    assert image_files(root, "attack:from", tmp_path)["x"] == b"image-secret\n"
    d = ctx(tmp_path / "c2", "FROM base\nCOPY --from=attack:evil-image /abs/secret /y\n")
    refused(root, build(root, d, check=False), "Dockerfile:2", "not found")


# --------------------------------------------------------------------- High 2: Dockerfile, .dockerignore


def test_dockerfile_link_out_of_the_context_is_not_read(root, tmp_path, host_dir):
    d = tmp_path / "ctx"
    d.mkdir()
    os.symlink(host_dir / "Dockerfile", d / "Dockerfile")
    err = refused(root, build(root, d, check=False))
    assert err.strip() == "Error: Cannot locate specified Dockerfile: Dockerfile"
    # a link through a directory, and a stdin context naming it with -f
    os.unlink(d / "Dockerfile")
    os.symlink(host_dir, d / "dir")
    p = lamina(root, "build", "-f", "dir/Dockerfile", d, check=False)
    assert refused(root, p).strip() == "Error: Cannot locate specified Dockerfile: Dockerfile"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("dir")
        ti.type, ti.linkname = tarfile.SYMTYPE, str(host_dir)
        tf.addfile(ti)
    p = lamina(root, "build", "-f", "dir/Dockerfile", "-", input=buf.getvalue(), check=False)
    assert refused(root, p).strip() == "Error: Cannot locate specified Dockerfile: dir/Dockerfile"


def test_dockerfile_link_inside_the_context_is_followed(root, tmp_path):
    d = ctx(tmp_path, "FROM base\nCOPY f /f\n", {"f": "f\n"})
    (d / "Dockerfile").rename(d / "real.Dockerfile")
    os.symlink("real.Dockerfile", d / "Dockerfile")
    build(root, d, "-t", "attack:dflink")
    assert image_files(root, "attack:dflink", tmp_path)["f"] == b"f\n"


def test_alias_to_the_context_root_cannot_bring_in_ignored_files(root, tmp_path):
    files = {"secret.env": "TOKEN=ignored\n", "keep": "keep\n", ".dockerignore": "secret.env\nhidden\n",
             "sub/x": "x\n"}
    d = ctx(tmp_path, "FROM base\nCOPY alias/secret.env /s\n", files)
    os.symlink(".", d / "alias")
    os.symlink("sub", d / "hidden")  # an ignored link cannot be walked through either
    refused(root, build(root, d, check=False), "Dockerfile:2", "file not found in build context")
    (d / "Dockerfile").write_text("FROM base\nCOPY hidden/x /s\n")
    refused(root, build(root, d, check=False), "Dockerfile:2", "file not found in build context")
    (d / "Dockerfile").write_text("FROM base\nCOPY alias /all/\nCOPY alias/* /glob/\nCOPY alias/keep /k\n")
    build(root, d, "-t", "attack:alias")
    files = image_files(root, "attack:alias", tmp_path)
    assert files["all/keep"] == files["glob/keep"] == files["k"] == b"keep\n"
    assert not any(name.endswith("secret.env") for name in files), sorted(files)


def test_bind_mount_of_the_context_hides_ignored_files(root, tmp_path):
    """BuildKit binds the context as it was sent: .dockerignore'd files are not there."""
    files = {"secret.env": "TOKEN=ignored\n", "keep": "keep\n", "sub/secret.env": "TOKEN=deep\n",
             ".dockerignore": "**/secret.env\n"}
    df = ("FROM base\n"
          "RUN --mount=type=bind,target=/ctx cat /ctx/secret.env /ctx/sub/secret.env /ctx/keep > /ro 2>&1; true\n"
          "RUN --mount=type=bind,source=sub,target=/s,rw ls -a /s > /rw; true\n")
    build(root, ctx(tmp_path, df, files), "-t", "attack:bindignore")
    files = image_files(root, "attack:bindignore", tmp_path)
    assert b"TOKEN" not in files["ro"] and b"keep" in files["ro"], files["ro"]
    assert b"secret.env" not in files["rw"], files["rw"]


def test_dockerignore_link_out_of_the_context_is_not_read(root, tmp_path, host_dir):
    d = ctx(tmp_path, "FROM base\nCOPY . /all/\n", {"f": "f\n"})
    os.symlink(host_dir / "Dockerfile", d / ".dockerignore")
    refused(root, build(root, d, check=False), ".dockerignore")


# --------------------------------------------------------------------- Medium 9: one read per key

_SWAP = """
import os, sys
from lamina.builder import fileops, stepenv

path, how, at = sys.argv[1], sys.argv[2], sys.argv[3]

def swap():
    if how.startswith("link:"):  # the directory becomes a link to the host
        os.rename(path, path + ".old")
        os.symlink(how[5:], path)
    else:
        with open(path + ".swap", "wb") as f:
            f.write(bytes.fromhex(how[4:]))
        os.replace(path + ".swap", path)

if at == "key":  # between the step's lookup key and its copy
    original = stepenv.StepEnv.cached_or

    def hooked(self, *args, **kwargs):
        swap()
        return original(self, *args, **kwargs)

    stepenv.StepEnv.cached_or = hooked
else:  # in the middle of the copy, right after the entry named `at` was made
    original = fileops.Writer._copy_entry

    def hooked(self, *args):
        original(self, *args)
        if args[-1] == at:
            swap()

    fileops.Writer._copy_entry = hooked
from lamina.cli.main import main
sys.exit(main(sys.argv[4:]))
"""


def swap_build(root: Store, path: Path, how: str, *args, at: str = "key"):
    """`lamina build *args` with `path` replaced (how = "hex:<data>" or "link:<target>")
    after the COPY/ADD step computed its lookup key, or (`at`) after the copy made the
    entry of that name."""
    return subprocess.run([sys.executable, "-c", _SWAP, str(path), how, at, "--root", str(root.path), "build",
                           *map(str, args)], capture_output=True, timeout=180)


def _tar_bytes(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("step,source,first,second,want", [
    ("COPY", "f", b"original\n", b"swapped!\n", "f"),
    ("ADD", "a.tar", _tar_bytes("inner", b"original\n"), _tar_bytes("inner", b"swapped!\n"), "x/inner"),
])
def test_source_swapped_between_key_and_copy_is_not_miskeyed(root_only, tmp_path, step, source, first, second,
                                                             want):
    """The file is replaced after the step's lookup key was hashed and before it is
    copied: the image holds the new content, so it must be recorded under the new
    content's key, and a later build of the original content must not hit it."""
    dest = "/x/" if step == "ADD" else "/f"
    d = ctx(tmp_path, f"FROM base\n{step} {source} {dest}\n", {source: first})
    p = swap_build(root_only, d / source, "hex:" + second.hex(), "-t", f"attack:swap-{step}", d)
    assert p.returncode == 0, p.stderr.decode()
    assert image_files(root_only, f"attack:swap-{step}", tmp_path)[want] == b"swapped!\n"
    # The original content again: the cache must not answer with the swapped image.
    (d / source).write_bytes(first)
    build(root_only, d, "-t", f"attack:again-{step}")
    assert image_files(root_only, f"attack:again-{step}", tmp_path)[want] == b"original\n"
    assert lamina(root_only, "system", "check").returncode == 0


def test_directory_swapped_for_a_host_link_during_the_copy(root_only, tmp_path, host_dir):
    """Content is read through the fds of the walk that resolved it: a directory
    replaced by a link to the host while the copy walks the tree is never followed."""
    d = ctx(tmp_path, "FROM base\nCOPY tree /t/\n", {"tree/a": "a\n", "tree/sub/secret": "context\n"})
    p = swap_build(root_only, d / "tree" / "sub", f"link:{host_dir}", "--no-cache", "-t", "attack:dirswap", d, at="sub")
    assert HOST_SECRET not in (p.stdout + p.stderr).decode()
    if p.returncode == 0:
        files = image_files(root_only, "attack:dirswap", tmp_path)
        assert not any(HOST_SECRET.encode() in v for v in files.values() if isinstance(v, bytes)), files
    else:
        refused(root_only, p, "Dockerfile:2", "tree/sub")
    assert lamina(root_only, "system", "check").returncode == 0
