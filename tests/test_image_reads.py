"""inspect, history and the run path's unpack load an image once through image.Image:
one read of its config, at most one of its manifest, however many layers it has."""

from __future__ import annotations

from registry_fixtures import make_image, tar_bytes

from conftest import requires_root
from lamina.engine.images import history, inspect_image

LAYERS = [tar_bytes({f"etc/f{i}.txt": f"layer {i}\n".encode()}) for i in range(4)]


def _count_reads(system, monkeypatch) -> dict:
    counts = {"config": 0, "manifest": 0}
    raw_config, raw_manifest = system.images.raw_config, system.images.raw_manifest

    def config(image_id):
        counts["config"] += 1
        return raw_config(image_id)

    def manifest(record):
        counts["manifest"] += 1
        return raw_manifest(record)

    monkeypatch.setattr(system.images, "raw_config", config)
    monkeypatch.setattr(system.images, "raw_manifest", manifest)
    return counts


def test_inspect_and_history_read_the_config_once(stores, monkeypatch):
    s = stores("s")
    image = make_image(s, LAYERS, "four:1")
    counts = _count_reads(s, monkeypatch)
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
    counts = _count_reads(s, monkeypatch)
    layers = s.unpack(image)  # none unpacked yet: every layer's blob is opened
    assert len(layers) == 4 and counts == {"config": 1, "manifest": 1}
    assert len(s.unpack(image)) == 4 and counts == {"config": 2, "manifest": 1}  # all there: no manifest
