"""inspect, history and the run path's unpack load an image once through image.Image:
one read of its config, at most one of its manifest, however many layers it has."""

from __future__ import annotations

from registry_fixtures import make_image, tar_bytes

from conftest import requires_root
from lamina.engine.images import history, inspect_image

LAYERS = [tar_bytes({f"etc/f{i}.txt": f"layer {i}\n".encode()}) for i in range(4)]


def _count_reads(system, monkeypatch, image) -> dict:
    """Reads of the image's config and manifest blobs, through whichever store asks
    (inspect reads the config through the content store, without the image store)."""
    counts = {"config": 0, "manifest": 0}
    kinds = {str(image): "config", str(system.images.get(image).manifest): "manifest"}
    read = system.content.read

    def counted(digest, *args, **kwargs):
        if str(digest) in kinds:
            counts[kinds[str(digest)]] += 1
        return read(digest, *args, **kwargs)

    monkeypatch.setattr(system.content, "read", counted)
    return counts


def test_inspect_and_history_read_the_config_once(stores, monkeypatch):
    s = stores("s")
    image = make_image(s, LAYERS, "four:1")
    counts = _count_reads(s, monkeypatch, image)
    doc = inspect_image(s, "four:1")
    assert doc["Id"] == str(image) and len(doc["RootFS"]["Layers"]) == 4
    assert counts == {"config": 1, "manifest": 0}
    rows = history(s, "four:1")
    assert [r[2] for r in rows] == ["layer 3", "layer 2", "layer 1", "layer 0"]
    assert counts == {"config": 2, "manifest": 0}


@requires_root  # unpacking makes device nodes and owners
def test_unpack_reads_config_and_manifest_once_for_all_layers(stores, monkeypatch):
    s = stores("s")
    image = make_image(s, LAYERS, "four:1")
    counts = _count_reads(s, monkeypatch, image)
    layers = s.unpack(image)  # none unpacked yet: every layer's blob is opened
    assert len(layers) == 4 and counts == {"config": 1, "manifest": 1}
    assert len(s.unpack(image)) == 4 and counts == {"config": 2, "manifest": 1}  # all there: no manifest
