"""One pull-if-missing (transfer.pull.pull_if_missing) for `run` (engine.images.ensure_image)
and a build's FROM (builder/stepenv.py): the same notice, the same pull, no pull when present."""

from __future__ import annotations

import sys

from registry_fixtures import registry, docker_config  # noqa: F401 - pytest fixtures
from registry_fixtures import make_image, tar_bytes

from conftest import requires_root
from lamina.cli.main import main
from lamina.reference import parse
from lamina.transfer.progress import PlainProgress, QuietProgress
from lamina.transfer.pull import pull_if_missing
from lamina.transfer.push import Pusher

pytestmark = requires_root  # pulled layers are unpacked

LAYER = tar_bytes({"etc/from.txt": b"pulled for FROM\n"})


def _published(stores, registry, path):
    src = stores("src")
    image = make_image(src, [LAYER], f"{registry.host}/{path}:latest")
    Pusher(src, QuietProgress()).push(parse(f"{registry.host}/{path}:latest"))
    return image


def test_pull_if_missing_notices_pulls_once(stores, registry, docker_config, capsys):
    image = _published(stores, registry, "once/img")
    s = stores("dst")
    told = []
    rec = pull_if_missing(s, f"{registry.host}/once/img", progress=PlainProgress(sys.stdout), notice=told.append)
    assert rec.id == image and told == [f"Unable to find image '{registry.host}/once/img:latest' locally"]
    assert "Status: Downloaded newer image" in capsys.readouterr().out
    assert pull_if_missing(s, f"{registry.host}/once/img", progress=PlainProgress(sys.stdout),
                           notice=told.append).id == image
    assert len(told) == 1 and capsys.readouterr().out == ""  # present: no pull, no notice


def test_build_from_a_missing_image_pulls_it_through_the_same_function(stores, registry, docker_config,
                                                                      tmp_path, capsys):
    image = _published(stores, registry, "from/base")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/from/base\nLABEL pulled=yes\n")
    s = stores("build")
    assert main(["--root", s.root, "build", "-t", "built:1", str(ctx)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"Unable to find image '{registry.host}/from/base:latest' locally\n")
    assert "Status: Downloaded newer image" in captured.out
    assert s.images.resolve(f"{registry.host}/from/base").id == image
    built = s.images.config(s.images.resolve("built:1").id)
    assert built["config"]["Labels"] == {"pulled": "yes"}
    assert built["rootfs"] == s.images.config(image)["rootfs"]  # on the pulled layers


def test_run_pull_always_pulls_a_present_image(stores, registry, docker_config, capsys):
    """`run/create --pull always` pulls first, the image here or not, as docker's CLI does
    (checked with the 20.10 and 28 clients on a loopback registry): the pull's lines on
    stderr, no `Unable to find image`, and the container on what the tag names now."""
    ref = f"{registry.host}/always/img:latest"
    src = stores("src")
    old = make_image(src, [LAYER], ref)
    Pusher(src, QuietProgress()).push(parse(ref))
    s = stores("dst")
    assert main(["--root", s.root, "pull", ref]) == 0
    assert s.images.resolve(ref).id == old
    new = make_image(src, [LAYER, tar_bytes({"etc/new.txt": b"v2\n"})], ref)
    Pusher(src, QuietProgress()).push(parse(ref))
    capsys.readouterr()
    assert main(["--root", s.root, "create", "--pull", "missing", ref, "true"]) == 0  # present: no pull
    assert "Pulling from" not in capsys.readouterr().err
    assert main(["--root", s.root, "create", "--pull", "always", ref, "true"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("latest: Pulling from always/img\n"), captured.err
    assert f"Status: Downloaded newer image for {ref}\n" in captured.err and "Unable to find" not in captured.err
    assert s.containers.resolve(captured.out.strip()).image_id == str(new) != str(old)
    assert main(["--root", s.root, "create", "--pull", "always", ref, "true"]) == 0  # up to date: pulled all the same
    assert f"Status: Image is up to date for {ref}\n" in capsys.readouterr().err
