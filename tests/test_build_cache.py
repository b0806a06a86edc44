"""The build cache: what hits, what misses, and that a fully cached rebuild does no
container work at all."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from conftest import requires_root
from test_build_exec import build, ctx, lamina, run

pytestmark = requires_root


@pytest.fixture
def root(tmp_path, busybox_tar):
    r = tmp_path / "store"
    lamina(r, "import", busybox_tar, "base:latest")
    return r


def lines(p) -> list[str]:
    return p.stdout.decode().splitlines()


def image_id(p) -> str:
    return next(l for l in lines(p) if l.startswith("Successfully built ")).split()[-1]


DF = ("FROM base\nARG V=1\nENV E=1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy && echo $V > /v\n"
      "RUN echo later > /later\nLABEL x=y\n")


def containers_created(root) -> int:
    """Rows ever inserted in the containers table (SQLite keeps the rowid counter)."""
    db = sqlite3.connect(os.path.join(root, "lamina.db"))
    try:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='containers'").fetchone()
    except sqlite3.OperationalError:
        row = None
    finally:
        db.close()
    return row[0] if row else -1


def test_full_hit_runs_no_container(root, tmp_path):
    d = ctx(tmp_path, DF, {"a.txt": "A\n"})
    first = build(root, d, "-t", "c:1")
    assert sum(l.startswith(" ---> Running in") for l in lines(first)) == 5
    mounts_before = open("/proc/self/mountinfo").read().count(str(root))
    ctr_dir = os.listdir(os.path.join(root, "containers"))
    t = time.monotonic()
    second = build(root, d, "-t", "c:1")
    elapsed = time.monotonic() - t
    out = lines(second)
    assert not any("Running in" in l for l in out)
    assert out.count(" ---> Using cache") == 6
    assert image_id(second) == image_id(first)
    assert os.listdir(os.path.join(root, "containers")) == ctr_dir == []
    assert open("/proc/self/mountinfo").read().count(str(root)) == mounts_before
    assert elapsed < 5  # loose: no container, no mount, no layer work


def test_content_not_mtime(root, tmp_path):
    d = ctx(tmp_path, DF, {"a.txt": "A\n"})
    first = image_id(build(root, d, "-t", "c:1"))
    os.utime(d / "a.txt", (1, 1))
    p = build(root, d, "-t", "c:1")
    assert image_id(p) == first and lines(p).count(" ---> Using cache") == 6
    (d / "a.txt").write_text("B\n")
    p = build(root, d, "-t", "c:2")
    out = lines(p)
    i = out.index("Step 4/7 : COPY a.txt /a.txt")
    assert out[i + 1] != " ---> Using cache"
    # the first miss rebuilds the rest of the stage, even steps that did not change
    assert out.count(" ---> Using cache") == 2
    assert run(root, "c:2", "cat", "/copy") == "B\n"


def test_build_arg_change_misses_run(root, tmp_path):
    d = ctx(tmp_path, DF, {"a.txt": "A\n"})
    build(root, d, "-t", "c:1")
    p = build(root, d, "--build-arg", "V=2", "-t", "c:2")
    out = lines(p)
    i = out.index("Step 5/7 : RUN cat /a.txt > /copy && echo $V > /v")
    assert out[i + 1].startswith(" ---> Running in")
    assert run(root, "c:2", "cat", "/v") == "2\n"
    again = build(root, d, "--build-arg", "V=2", "-t", "c:3")
    assert image_id(again) == image_id(p)


def test_cache_across_tags_and_no_cache(root, tmp_path):
    d = ctx(tmp_path, DF, {"a.txt": "A\n"})
    first = image_id(build(root, d, "-t", "name:one"))
    other = build(root, d, "-t", "other/name:two")
    assert image_id(other) == first and lines(other).count(" ---> Using cache") == 6
    fresh = build(root, d, "--no-cache", "-t", "name:three")
    assert "Using cache" not in fresh.stdout.decode() and image_id(fresh) != first
    assert run(root, "name:three", "cat", "/copy") == "A\n"


@pytest.mark.parametrize("before,after", [
    ("HEALTHCHECK CMD true", "HEALTHCHECK CMD false"),
    ("ONBUILD RUN echo a", "ONBUILD RUN echo b"),
    ("RUN <<EOF\necho a > /x\nEOF", "RUN <<EOF\necho b > /x\nEOF"),
    ("COPY <<EOF /x\na\nEOF", "COPY <<EOF /x\nb\nEOF"),
    ("USER root", "USER app"),
])
def test_each_instruction_change_misses(root, tmp_path, before, after):
    tail = "RUN echo tail > /tmp/tail\n"
    first = build(root, ctx(tmp_path / "a", f"FROM base\n{before}\n{tail}"), "-t", "m:1")
    second = build(root, ctx(tmp_path / "b", f"FROM base\n{after}\n{tail}"), "-t", "m:2")
    assert image_id(first) != image_id(second)
    assert "Using cache" not in second.stdout.decode()


def test_removed_image_is_a_miss(root, tmp_path):
    d = ctx(tmp_path, "FROM base\nRUN echo x > /x\n")
    build(root, d, "-t", "gone:1")
    lamina(root, "rmi", "gone:1")
    p = build(root, d, "-t", "gone:1")
    assert "Using cache" not in p.stdout.decode() and run(root, "gone:1", "cat", "/x") == "x\n"


def test_memo_replay_matches_the_step_cache(root, tmp_path):
    """A rerun with nothing changed is replayed from the build memo; its log is the
    log of a build whose every step hits the cache."""
    d = ctx(tmp_path, DF, {"a.txt": "A\n"})
    build(root, d, "-t", "memo:1")
    (d / "unrelated").write_text("x")  # a context change the steps never read: memo miss, cache hits
    stepwise = lines(build(root, d, "-t", "memo:1"))
    replayed = lines(build(root, d, "-t", "memo:1"))
    assert replayed == stepwise and replayed.count(" ---> Using cache") == 6
    other = build(root, d, "-t", "memo:other", "-t", "registry.example:5000/x/y:z")
    assert lines(other)[-2:] == ["Successfully tagged memo:other", "Successfully tagged registry.example:5000/x/y:z"]
    assert run(root, "registry.example:5000/x/y:z", "cat", "/copy") == "A\n"


def test_memo_notices_a_moved_base_tag(root, tmp_path, busybox_tar):
    d = ctx(tmp_path, "FROM base\nRUN echo x > /x\n")
    first = image_id(build(root, d, "-t", "moved:1"))
    build(root, ctx(tmp_path / "nb", "FROM base\nRUN echo new-base > /nb\n"), "-t", "base:latest")
    p = build(root, d, "-t", "moved:1")
    assert image_id(p) != first and "Running in" in p.stdout.decode()
    assert run(root, "moved:1", "cat", "/nb", "/x") == "new-base\nx\n"


def test_two_concurrent_builds(root, tmp_path):
    """Catalogue E.43: the same Dockerfile and tag built twice at once."""
    import subprocess
    import sys

    d = ctx(tmp_path, DF, {"a.txt": "A\n"})
    cmd = [sys.executable, "-m", "lamina", "--root", str(root), "build", "-t", "conc:1", str(d)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    assert run(root, "conc:1", "cat", "/copy", "/v") == "A\n1\n"
    assert lamina(root, "system", "check").returncode == 0
    assert lamina(root, "ps", "-a", "-q").stdout.strip() == b""
