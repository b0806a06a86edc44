"""Extraction escapes through the command line (issue 8 High 3/4, issue 16): hostile layers
given to `lamina import` and `lamina load`, once as root and once as a rootless user
(rootless_fixtures.runner).  test_archive_extract.py and test_archive_malformed.py drive
apply_layer in-process, as root, entry by entry; here every class of escape goes through
the whole command: `..` and absolute names, a write through a link out of the layer
(absolute and relative), a hard link to a host file, a whiteout and an opaque marker under
an escaping link (against a lower layer, through `load`), an entry replacing the root.

Whatever the command answers (it may import the entry re-rooted or refuse the layer in one
line), root's files beside the store stay exactly as they were and the store stays sound;
as the user, nothing is written outside its store (`confined`)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from conftest import requires_root
from rootless_fixtures import attack_user, confined, runner  # noqa: F401 - pytest fixtures
from rootless_fixtures import Runner, fingerprint

pytestmark = requires_root


def lamina(runner: Runner, store: Path, *args, check=True):
    p = runner.run(store, *args)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} as {runner.name} exited {p.returncode}: {p.stderr.decode()}")
    return p


def entry(name: str, kind: str = "file", data: bytes = b"evil\n", link: str = "") -> tuple:
    return name, kind, data, link


def layer(entries: list[tuple]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data, link in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
                continue
            ti.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE}[kind]
            ti.linkname = link
            tf.addfile(ti)
    return buf.getvalue()


def save_archive(layers: list[bytes], tag: str) -> bytes:
    """A docker-save archive of `layers` (bottom first)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + hashlib.sha256(b).hexdigest() for b in layers]}}).encode()
    members = {"config.json": config}
    members |= {f"l{i}/layer.tar": b for i, b in enumerate(layers)}
    members["manifest.json"] = json.dumps([{"Config": "config.json", "RepoTags": [tag],
                                            "Layers": [f"l{i}/layer.tar" for i in range(len(layers))]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def escapes(host: Path, home: Path) -> dict[str, list[list[tuple]]]:
    """Escape class -> the layers (bottom first) that try it, aimed at root's `host` dir and
    at the user's home (which the user's namespace root owns: a write there would succeed)."""
    up = "../" * 12
    return {
        "dotdot and absolute names": [[entry(up + str(host / "victim").lstrip("/")), entry(str(host / "victim")),
                                       entry(up + str(home / "pwned").lstrip("/")), entry(str(home / "pwned"))]],
        "write through an absolute link": [[entry("out", "sym", link=str(host)), entry("out/victim"),
                                            entry("mine", "sym", link=str(home)), entry("mine/pwned")]],
        "write through a relative link": [[entry("a/b", "dir"), entry("a/b/up", "sym", link=up + str(host).lstrip("/")),
                                           entry("a/b/up/victim"), entry("a/b/up/sub/new")]],
        "hard link to a host file": [[entry("h", "hard", link=str(host / "victim"))]],
        "hard link through a link out": [[entry("out", "sym", link=str(host)), entry("h", "hard", link="out/victim")]],
        "whiteout under an escaping link": [[entry("out", "sym", link=str(host))],
                                            [entry("out/.wh.victim", data=b""), entry("out/sub/.wh.keep", data=b"")]],
        "opaque marker under an escaping link": [[entry("out", "sym", link=str(host))],
                                                 [entry("out/sub/.wh..wh..opq", data=b""), entry("out/sub/x")]],
        "entry replacing the root": [[entry(".", "sym", link=str(host)), entry("victim")],
                                     [entry("./", "sym", link=str(host)), entry("/", "file")]],
    }


# the classes refused outright (one line, as docker's daemon refuses them); the others import re-rooted
REFUSED = {"hard link to a host file": "target not found in the layer",
           "hard link through a link out": "target not found in the layer",
           "entry replacing the root": "it would replace the root directory"}


@pytest.fixture
def host(tmp_path, confined) -> Path:
    """Root's files beside the store: what every escape aims at; they must not change."""
    d = tmp_path / "host"
    (d / "sub").mkdir(parents=True)
    (d / "victim").write_bytes(b"root's victim\n")
    (d / "sub" / "keep").write_bytes(b"root's keep\n")
    for f in (d / "victim", d / "sub" / "keep"):
        confined[f] = fingerprint(f)
    return d


def listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.mark.parametrize("verb", ["import", "load"])
def test_extraction_escapes_stay_in_the_layer(runner, tmp_path, host, verb):
    home = runner.user.home if runner.user else tmp_path / "home"
    home.mkdir(exist_ok=True)
    store = runner.new_store(tmp_path / "s")
    before = listing(host), listing(home)
    for i, (what, layers) in enumerate(escapes(host, home).items()):
        if verb == "import":  # one layer each: `import` takes a rootfs tarball
            archives = [(tmp_path / f"e{i}-{j}.tar", layer(entries)) for j, entries in enumerate(layers)]
        else:
            archives = [(tmp_path / f"e{i}.tar", save_archive([layer(e) for e in layers], f"esc:{i}"))]
        for path, data in archives:
            path.write_bytes(data)
            args = ["import", path, f"esc:{i}"] if verb == "import" else ["load", "-i", path]
            p = lamina(runner, store, *args, check=False)
            err = p.stderr.decode()
            assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, (what, err)
            assert (p.returncode != 0) == (what in REFUSED), (what, err)
            assert REFUSED.get(what, "") in err, (what, err)
        assert (listing(host), listing(home)) == before, what
        assert not (home / "pwned").exists(), what
    assert lamina(runner, store, "system", "check").returncode == 0
