"""lamina in lamina (issue 15): the repo's Dockerfile builds lamina's image with lamina,
and that image, run privileged with its store on a volume, builds a tiny image and
pushes it to a loopback registry (docs/in-container.md); the pushed image then runs
outside.  The base is the mmdebstrap bookworm minbase tarball the seed walkthrough
caches (.cache/bookworm-minbase.tar); the image's apt-get install goes through the
build's bridge.  About a minute: slow.
"""

from __future__ import annotations

import shutil

import pytest

from conftest import REPO, requires_root
from registry_fixtures import registry  # noqa: F401  (fixture)
from test_build_platforms import lamina
from test_seed_walkthrough import debian_tar  # noqa: F401  (fixture)

pytestmark = [requires_root, pytest.mark.slow]


def test_lamina_builds_itself_and_builds_inside_itself(tmp_path, debian_tar, busybox_tar, registry):  # noqa: F811
    root = tmp_path / "outer"
    lamina(root, "import", str(debian_tar), "bookworm:minbase")
    r = lamina(root, "build", "--build-arg", "BASE=bookworm:minbase", "-t", "lamina:self", str(REPO))
    assert "Successfully tagged lamina:self" in r.stdout
    # the image's lamina answers (python3 and the copied package are there)
    assert "Usage:" in lamina(root, "run", "--rm", "lamina:self", "--help").stdout

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy2(busybox_tar, ctx / "bb.tar")
    (ctx / "Dockerfile").write_text('FROM bb\nRUN echo built inside > /inner.txt\nCMD ["cat", "/inner.txt"]\n')
    store = tmp_path / "inner-store"
    store.mkdir()
    target = f"{registry.host}/inner/tiny:1"
    script = (f"python3 -m lamina import /ctx/bb.tar bb && python3 -m lamina build -t {target} /ctx "
              f"&& python3 -m lamina push {target}")
    r = lamina(root, "run", "--rm", "--privileged", "--network", "host", "-v", f"{store}:/var/lib/lamina",
               "-v", f"{ctx}:/ctx:ro", "--entrypoint", "sh", "lamina:self", "-c", script)
    assert "Successfully tagged " + target in r.stdout
    assert "1: digest: sha256:" in r.stdout
    assert (store / "lamina.db").exists()  # the inner store lives on the volume

    # outside: another store pulls what the inner lamina pushed, and runs it
    other = tmp_path / "other"
    lamina(other, "pull", target)
    assert lamina(other, "run", "--rm", target).stdout.strip() == "built inside"
