"""The classic builder's cache sources: `cachefrom` images (POST /build) to take steps from.

As dockerd's image cache with sources (moby image/cache/cache.go, the builder the
Engine API's /build runs): a step hits when a source image's history goes on from the
step's parent with this step's `created_by` (the parent's history and layers are a
prefix of the source's).  The source's last step is the source itself; an earlier one
is made again from the parent, the source's history entry and its layer (moby's
restoreCachedImage: no step runs), and from then on only that source is followed.
With sources, a hit of the local cache counts only when it is a source or one of its
steps (dockerd takes a local hit only when it is a parent of a source), so a build
asked to reuse given images does not pick up another's steps.
"""

from __future__ import annotations

from lamina.digest import Digest
from lamina.image import Image, append, edit, publish


class CacheSources:
    def __init__(self, system, image_ids) -> None:
        self.system = system
        self.sources = [Image.load(system, Digest(str(i))) for i in image_ids]

    def owns(self, image_id) -> bool:
        """Is a local cache hit a source, or a step of one (its history and layers a prefix)?"""
        image = Image.load(self.system, Digest(str(image_id)))
        return any(str(s.id) == str(image.id) or _extends(s, image) for s in self.sources)

    def find(self, parent: Image, created_by: str, cfg: dict) -> Digest | None:
        """The step image a source has for `created_by` on `parent`, or None."""
        done = len(parent.history)
        for source in self.sources:
            history = source.history
            if not _extends(source, parent) or history[done].get("created_by", "") != created_by:
                continue
            if len(history) - 1 == done:
                return source.id
            image = self._restore(parent, source, done, cfg)
            self.sources = [source]  # as moby: no jumping to another source mid-build
            return image.id
        return None

    def _restore(self, parent: Image, source: Image, index: int, cfg: dict) -> Image:
        """The parent plus the source's history entry `index` and its layer, as a step image."""
        from lamina import oci

        config = edit(parent)
        config["config"] = cfg
        config["container_config"] = oci.empty_container_config()
        for key in ("container", "comment"):
            config.pop(key, None)
        for key in ("architecture", "os", "variant", "author"):
            if key in source.config:
                config[key] = source.config[key]
        entry = {k: v for k, v in source.history[index].items() if k != "empty_layer"}
        if entry.get("created"):
            config["created"] = entry["created"]
        layer, size = None, 0
        if not source.history[index].get("empty_layer"):
            n = sum(1 for h in source.history[:index] if not h.get("empty_layer"))
            layer = source.layer_blobs()[n]
            record = self.system.layers.get(source.chain_ids[n])
            size = record.size if record is not None else 0
        return publish(self.system, append(parent, config, entry, layer, layer_size=size))


def _extends(image: Image, parent: Image) -> bool:
    """moby's isValidParent: `image` goes on from `parent` (history and layers a strict prefix)."""
    history = image.history
    if not history:
        return False
    above = parent.history
    if not above and not parent.diff_ids:
        return True
    if len(above) >= len(history) or len(parent.diff_ids) > len(image.diff_ids):
        return False
    return history[:len(above)] == above and image.diff_ids[:len(parent.diff_ids)] == parent.diff_ids
