"""The image value (lamina/image.py): loaded once, derived with `append`, published
with one store transaction; and a build step reading its parent's config once."""

from __future__ import annotations

import io
import json

import pytest
from registry_fixtures import registry  # noqa: F401 - pytest fixture

from lamina import oci
from lamina.builder.executor import Builder
from lamina.builder.log import BuildLog
from lamina.builder.state import BuildRequest
from lamina.digest import Digest
from lamina.errors import BuildError
from lamina.image import Image, append, edit, publish
from lamina.imageops import import_tarball
from lamina.reference import parse
from lamina.store.images import LayerBlob


@pytest.fixture
def system(stores, busybox_tar):
    s = stores("root")
    with open(busybox_tar, "rb") as f:
        import_tarball(s, f, tags=(parse("base:latest"),))
    return s


def _base(system) -> Image:
    return Image.load(system, system.images.resolve("base").id)


def test_load_is_the_stored_image(system):
    img = _base(system)
    assert Digest.of_bytes(img.raw_config) == img.id
    assert img.config == json.loads(img.raw_config)
    assert len(img.diff_ids) == 1 and img.chain_ids == img.diff_ids
    assert [b.diff_id for b in img.layer_blobs()] == img.diff_ids
    assert img.size == system.images.get(img.id).size > 0
    assert img.history[0]["comment"].startswith("Imported from")
    assert [layer.chain_id for layer in img.layers()] == img.chain_ids
    scratch = Image.load(system, None)
    assert scratch.id is None and scratch.diff_ids == [] and scratch.layer_blobs() == [] and scratch.size == 0


def test_append_without_a_layer_marks_the_entry_empty(system):
    base = _base(system)
    config = edit(base)
    config["config"]["Cmd"] = ["true"]
    new = append(base, config, {"created": "2020-01-01T00:00:00Z", "created_by": "x"})
    assert base.config["config"].get("Cmd") != ["true"]  # the base value is untouched
    assert new.history[-1] == {"created": "2020-01-01T00:00:00Z", "created_by": "x", "empty_layer": True}
    assert new.history[:-1] == base.history
    assert new.diff_ids == base.diff_ids and new.layer_blobs() == base.layer_blobs()
    assert new.id == Digest.of_bytes(new.raw_config) and new.parent == base.id and new.size == base.size
    assert not system.images.exists(new.id)  # a value until published
    publish(system, new)
    assert system.images.raw_config(new.id) == new.raw_config
    rec = system.images.get(new.id)
    assert rec.parent == str(base.id) and rec.size == base.size


def test_append_with_a_layer_extends_rootfs_and_chain(system):
    base = _base(system)
    blob = base.layer_blobs()[0]  # any stored blob will do as the new layer's
    layer = LayerBlob(oci.Descriptor(oci.OCI_LAYER, blob.descriptor.digest, blob.descriptor.size),
                      Digest("sha256:" + "ab" * 32))
    new = publish(system, append(base, edit(base), {"created_by": "y"}, layer, layer_size=7))
    assert new.diff_ids == base.diff_ids + [layer.diff_id]
    assert new.chain_ids[:1] == base.chain_ids and len(set(new.chain_ids)) == 2
    assert "empty_layer" not in new.history[-1]
    again = Image.load(system, new.id)
    assert again.raw_config == new.raw_config and again.size == base.size + 7
    assert again.layer_blobs() == base.layer_blobs() + [layer]


def test_a_build_step_reads_its_parent_config_once(system, tmp_path, monkeypatch):
    """Each step used to read (and hash) its parent's config three times: once to
    move the stage there, once as the commit's parent, once more for the layer list.
    Now a made step image is kept as a value: only the FROM image is read."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "a").write_text("a\n")
    df = "FROM base\nENV A=1\nLABEL b=2\nCOPY a /a\nRUN echo hi > /hi\nCMD [\"x\"]\n"
    reads: list[str] = []
    real = system.images.raw_config
    monkeypatch.setattr(system.images, "raw_config", lambda image_id: reads.append(str(image_id)) or real(image_id))
    result = Builder(system, BuildRequest(str(tmp_path / "ctx"), df), BuildLog(io.StringIO())).build()
    base_id = str(system.images.resolve("base").id)
    assert reads == [base_id]
    final = Image.load(system, result.image_id)
    assert [h.get("empty_layer", False) for h in final.history[-5:]] == [True, True, False, False, True]
    assert len(final.diff_ids) == 3
    # a fully cached rebuild reads each step image once, as the stage moves through it
    reads.clear()
    again = Builder(system, BuildRequest(str(tmp_path / "ctx"), df), BuildLog(io.StringIO())).build()
    assert again.image_id == result.image_id
    assert len(reads) == len(set(reads)) == 6


def test_build_from_pulls_a_missing_image(stores, registry, tmp_path, capsys):
    """FROM / COPY --from an image that is not here pulls it (the builder uses the
    transfer layer itself, it does not reach up into the engine)."""
    from registry_fixtures import make_image, tar_bytes

    from lamina.transfer.progress import QuietProgress
    from lamina.transfer.push import Pusher

    name = f"{registry.host}/build/base:latest"
    src = stores("src")
    pushed = make_image(src, [tar_bytes({"etc/base.txt": b"base\n"})], name)
    Pusher(src, QuietProgress()).push(parse(name))
    s = stores("build")
    (tmp_path / "ctx").mkdir()
    df = f"FROM {registry.host}/build/base\nCOPY --from={registry.host}/build/base /etc/base.txt /copied\n"
    out = io.StringIO()
    builder = Builder(s, BuildRequest(str(tmp_path / "ctx"), df), BuildLog(out))
    result = builder.build()
    err = capsys.readouterr().err
    assert err.count(f"Unable to find image '{registry.host}/build/base:latest' locally\n") == 1
    assert "Status: Downloaded newer image" in out.getvalue()
    assert builder.lookups == {f"{registry.host}/build/base": str(pushed)}
    final = Image.load(s, result.image_id)
    assert final.diff_ids[:1] == Image.load(s, pushed).diff_ids and len(final.diff_ids) == 2
    with pytest.raises(BuildError, match="no stage or image named"):
        Builder(s, BuildRequest(str(tmp_path / "ctx"), f"FROM {registry.host}/build/none\n"),
                BuildLog(io.StringIO())).build()
