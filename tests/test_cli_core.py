"""The core walkthrough through the real CLI: import, run, diff, commit, images,
history, inspect, rmi, rm — on real overlay mounts and real runc."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires_root

LAMINA = [sys.executable, "-m", "lamina"]

pytestmark = requires_root


def lamina(root, *args, input=None, check=True, driver=None, timeout=120):
    cmd = LAMINA + ["--root", str(root)] + (["--storage-driver", driver] if driver else []) + list(args)
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}: {p.stderr.decode()}")
    return p


def out(p) -> str:
    return p.stdout.decode()


@pytest.fixture(params=["overlay", "copy"])
def driver(request):
    return request.param


@pytest.fixture
def store(tmp_path, busybox_tar, driver):
    root = tmp_path / "store"
    image_id = out(lamina(root, "import", str(busybox_tar), "bb:1", driver=driver)).strip()
    return root, image_id, driver


def test_import_identities(store):
    root, image_id, driver = store
    assert image_id.startswith("sha256:") and len(image_id) == 71
    blob = root / "blobs" / "sha256" / image_id[7:]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == image_id[7:]  # ID = sha256(config bytes)
    config = json.loads(blob.read_bytes())
    assert config["history"][0]["comment"] == "Imported from -"
    listing = out(lamina(root, "images"))
    assert listing.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert listing.splitlines()[1].split()[:3] == ["bb", "1", image_id[7:19]]
    assert out(lamina(root, "images", "-q")).strip() == image_id[7:19]
    assert out(lamina(root, "images", "-q", "--no-trunc")).strip() == image_id
    row = json.loads(out(lamina(root, "images", "--format", "{{json .}}")))
    assert row["Repository"] == "bb" and row["Tag"] == "1" and row["ID"] == image_id[7:19]


def test_run_exit_codes(store):
    root, _, driver = store
    assert lamina(root, "run", "--rm", "bb:1", "true", driver=driver).returncode == 0
    assert lamina(root, "run", "--rm", "bb:1", "sh", "-c", "exit 3", check=False, driver=driver).returncode == 3
    p = lamina(root, "run", "--rm", "bb:1", "git", check=False, driver=driver)
    assert p.returncode == 127
    assert 'exec: "git": executable file not found in $PATH' in p.stderr.decode()
    p = lamina(root, "run", "--rm", "bb:1", "/etc/passwd", check=False, driver=driver)
    assert p.returncode == 126
    p = lamina(root, "run", "--rm", "nosuch:1", "true", "--pull", check=False, driver=driver)
    assert p.returncode != 0
    assert out(lamina(root, "ps", "-aq")) == ""  # --rm removed every container


def test_run_options(store, tmp_path):
    root, _, driver = store
    envf = tmp_path / "env"
    envf.write_text("# comment\nFROM_FILE=yes\n")
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    p = lamina(root, "run", "--rm", "-e", "A=1", "--env-file", str(envf), "-w", "/tmp/wd", "-u", "1000:1000",
               "--hostname", "boxy", "-v", f"{host}:/mnt:ro", "bb:1", "sh", "-c",
               'echo $A $FROM_FILE; pwd; id -u; id -g; hostname; cat /mnt/in.txt; touch /mnt/x 2>/dev/null || echo ro',
               driver=driver)
    assert out(p).split("\n")[:7] == ["1 yes", "/tmp/wd", "1000", "1000", "boxy", "from host", "ro"]
    p = lamina(root, "run", "--rm", "--network", "none", "bb:1", "cat", "/proc/net/dev", driver=driver)
    assert [l.split(":")[0].strip() for l in out(p).splitlines()[2:]] == ["lo"]
    p = lamina(root, "run", "--rm", "--entrypoint", "echo", "bb:1", "via", "entrypoint", driver=driver)
    assert out(p) == "via entrypoint\n"


def test_diff_commit_run_new_image(store):
    root, image_id, driver = store
    script = ("echo hi > /tmp/x && rm /bin/ls && mkdir -p /newdir/sub && touch /newdir/sub/f "
              "&& chmod 700 /home && echo more >> /etc/passwd")
    lamina(root, "run", "--name", "c1", "bb:1", "sh", "-c", script, driver=driver)
    diff = out(lamina(root, "diff", "c1")).splitlines()
    assert diff == [
        "C /bin", "D /bin/ls", "C /etc", "C /etc/passwd", "C /home", "A /newdir", "A /newdir/sub",
        "A /newdir/sub/f", "C /tmp", "A /tmp/x",
    ]
    new_id = out(lamina(root, "commit", "-m", "my change", "-a", "me", "c1", "bb:2")).strip()
    assert new_id.startswith("sha256:") and new_id != image_id
    p = lamina(root, "run", "--rm", "bb:2", "sh", "-c", "cat /tmp/x; ls /newdir/sub; test -e /bin/ls || echo gone",
               driver=driver)
    assert out(p) == "hi\nf\ngone\n"
    history = out(lamina(root, "history", "bb:2")).splitlines()
    assert history[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    assert history[1].startswith(new_id[7:19])
    assert history[1].rstrip().endswith("my change")
    info = json.loads(out(lamina(root, "inspect", "bb:2")))[0]
    assert info["Id"] == new_id and info["Author"] == "me" and info["RepoTags"] == ["bb:2"]
    assert len(info["RootFS"]["Layers"]) == 2
    assert info["Parent"] == image_id
    # a container of the new image with no change commits as an empty layer
    lamina(root, "run", "--name", "c2", "bb:2", "true", driver=driver)
    assert out(lamina(root, "diff", "c2")) == ""
    third = out(lamina(root, "commit", "c2", "bb:3")).strip()
    cfg = json.loads((root / "blobs" / "sha256" / third[7:]).read_bytes())
    assert cfg["history"][-1]["empty_layer"] is True
    assert len(cfg["rootfs"]["diff_ids"]) == 2


def test_rmi_refuses_image_in_use(store):
    root, image_id, driver = store
    lamina(root, "run", "--name", "user", "bb:1", "true", driver=driver)
    p = lamina(root, "rmi", "bb:1", check=False)
    assert p.returncode == 1
    assert "container" in p.stderr.decode() and "is using its referenced image" in p.stderr.decode()
    lamina(root, "tag", "bb:1", "other:tag")
    assert out(lamina(root, "rmi", "other:tag")) == "Untagged: other:tag\n"
    assert out(lamina(root, "rm", "user")) == "user\n"
    lines = out(lamina(root, "rmi", "bb:1")).splitlines()
    assert lines[0] == "Untagged: bb:1" and lines[1] == f"Deleted: {image_id}"
    assert out(lamina(root, "images", "-q")) == ""
    assert out(lamina(root, "system", "check")).strip().endswith("ok")
    assert list((root / "blobs" / "sha256").iterdir()) == []


def test_unknown_objects_and_invalid_refs(store):
    root, _, driver = store
    for args, msg in [
        (("rmi", "nosuch"), "No such image: nosuch"),
        (("diff", "nosuch"), "No such container: nosuch"),
        (("history", "nosuch"), "No such image: nosuch"),
        (("inspect", "nosuch"), "No such object: nosuch"),
    ]:
        p = lamina(root, *args, check=False)
        assert p.returncode == 1 and msg in p.stderr.decode(), (args, p.stderr)
    for bad in ("Ubuntu", "a//b", "x:t1:t2"):
        p = lamina(root, "tag", "bb:1", bad, check=False)
        assert p.returncode == 1 and "invalid reference format" in p.stderr.decode()
        assert "Traceback" not in p.stderr.decode()


def test_start_again_keeps_layer(store):
    root, _, driver = store
    lamina(root, "run", "--name", "st", "bb:1", "sh", "-c", "echo run >> /log; cat /log", driver=driver)
    p = lamina(root, "start", "-a", "st", driver=driver)
    assert out(p) == "run\nrun\n"
    ps = out(lamina(root, "ps", "-a")).splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert "Exited (0)" in ps[1] and ps[1].rstrip().endswith(" st")


def test_change_flags_and_export(store, tmp_path):
    root, _, driver = store
    lamina(root, "run", "--name", "cx", "bb:1", "sh", "-c", "echo exported > /marker", driver=driver)
    p = lamina(root, "commit", "-c", "FROM x", "cx", "bad:1", check=False)
    assert p.returncode == 1 and "FROM is not a valid change command" in p.stderr.decode()
    assert "bad" not in out(lamina(root, "images"))
    lamina(root, "commit", "-c", 'ENTRYPOINT ["echo"]', "-c", 'CMD ["from", "cmd"]', "-c", "LABEL k=v",
           "-c", "ENV B=2", "cx", "cc:2")
    assert out(lamina(root, "run", "--rm", "cc:2", driver=driver)) == "from cmd\n"
    info = json.loads(out(lamina(root, "inspect", "cc:2")))[0]["Config"]
    assert info["Labels"] == {"k": "v"} and "B=2" in info["Env"]
    tarball = tmp_path / "export.tar"
    lamina(root, "export", "-o", str(tarball), "cx")
    import tarfile

    with tarfile.open(tarball) as tf:
        names = set(tf.getnames())
        assert "marker" in names and "bin/busybox" in names
        assert tf.extractfile("marker").read() == b"exported\n"
    # and the export imports back as a runnable image
    lamina(root, "import", "-c", "ENV A=1", "-m", "re-imported", str(tarball), "again:1")
    assert out(lamina(root, "run", "--rm", "again:1", "sh", "-c", "cat /marker; echo $A", driver=driver)) \
        == "exported\n1\n"
    assert "re-imported" in out(lamina(root, "history", "again:1"))
