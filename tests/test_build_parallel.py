"""Independent stages in parallel (issue 15): builder/parallel.py.

Two stages the final one needs, neither needing the other, each sleeping 3 s in a RUN:
built at once (well under the 6 s one after the other), their logs printed whole and
prefixed by stage, then the main log as before with their steps `Using cache`; a chain
of stages, a single stage, --no-cache and LAMINA_BUILD_PARALLEL=0 build sequentially.
"""

from __future__ import annotations

import os
import time

from conftest import requires_root
from test_build_platforms import lamina

pytestmark = requires_root

DOCKERFILE = """\
FROM base AS one
RUN sleep 3 && echo one > /one
FROM base AS two
RUN sleep 3 && echo two > /two
FROM base
COPY --from=one /one /one
COPY --from=two /two /two
CMD ["cat", "/one", "/two"]
"""


def test_independent_stages_run_at_once(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "base")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    started = time.monotonic()
    r = lamina(root, "build", "-t", "par", str(ctx))
    took = time.monotonic() - started
    assert took < 5.8, f"the two 3 s stages took {took:.1f} s together"
    lines = r.stdout.splitlines()
    for stage in ("one", "two"):  # each stage's own log, whole and prefixed
        mine = [ln for ln in lines if ln.startswith(f"[stage {stage}] ")]
        assert mine[0] == f"[stage {stage}] Step 1/2 : FROM base AS {stage}"
        assert f"[stage {stage}] Step 2/2 : RUN sleep 3 && echo {stage} > /{stage}" in mine
        assert any(" ---> Running in " in ln for ln in mine)
    main = [ln for ln in lines if not ln.startswith("[stage ")]
    assert main[1:4] == ["Step 1/8 : FROM base AS one", " ---> " + main[2][6:], "Step 2/8 : RUN sleep 3 && echo one > /one"]
    assert main.count(" ---> Using cache") == 2  # the main build found both stages built
    assert "Successfully tagged par:latest" in main
    assert lamina(root, "run", "--rm", "par").stdout == "one\ntwo\n"


def test_sequential_when_nothing_to_gain(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "base")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    # a chain: each stage needs the one before
    (ctx / "Dockerfile").write_text("FROM base AS a\nRUN echo a > /a\nFROM a AS b\nRUN echo b > /b\n"
                                    "FROM b\nRUN cat /a /b\n")
    assert "[stage " not in lamina(root, "build", str(ctx)).stdout
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("sleep 3 && ", ""))
    assert "[stage " not in lamina(root, "build", "--no-cache", str(ctx)).stdout
    env_off = dict(os.environ, LAMINA_BUILD_PARALLEL="0")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "lamina", "--root", str(root), "build", str(ctx)],
                       capture_output=True, text=True, env=env_off, timeout=300)
    assert r.returncode == 0 and "[stage " not in r.stdout


def test_a_failing_stage_fails_the_build(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "base")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("sleep 3 && echo two > /two", "exit 3"))
    r = lamina(root, "build", str(ctx), check=False)
    assert r.returncode == 1
    assert "[stage two] " in r.stdout
    assert "returned a non-zero code: 3" in r.stderr
    assert "Step 1/8" not in r.stdout  # the main build did not start
