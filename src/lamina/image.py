"""One image value, loaded once per command, and the `mutate` helpers that derive new ones.

Modelled on go-containerregistry's v1.Image and mutate.Append: an `Image` holds the
exact config bytes (`raw_config`, whose sha256 is the image ID), the parsed config,
and reads the rest (its store record, manifest layers, unpacked layers) on first
use only.  A new image is derived as a value first (`append`: one more history
entry and, maybe, one more layer; its ID is the hash of the bytes it will be
stored as) and then published with one `ImageStore.create`.  `commit`, `import`
and every build step go through here, so the layer-and-history rules exist once
and a build step reads its parent's config once.

Kept lean (no dataclasses, no typing at runtime): `inspect` and `history` import it.
"""

from __future__ import annotations

from lamina import oci
from lamina.digest import Digest, chain_ids


class Image:
    """An image: stored (`load`), scratch (`scratch`) or derived and not yet published (`append`)."""

    __slots__ = ("id", "raw_config", "config", "parent", "_system", "_record", "_blobs", "_size",
                 "_diff_ids", "_unpacked")

    def __init__(self, image_id: Digest | None, raw_config: bytes, config: dict, *, system=None,
                 blobs: list | None = None, size: int | None = None, parent: Digest | None = None) -> None:
        self.id = image_id            # None: scratch
        self.raw_config = raw_config  # exact bytes; sha256(raw_config) == id
        self.config = config          # parsed; treat as read-only (derive with `edit`)
        self.parent = parent
        self._system = system
        self._record = None
        self._blobs = blobs
        self._size = size
        self._diff_ids: list[Digest] | None = None
        self._unpacked: list | None = None

    # ------------------------------------------------------------ sources
    @classmethod
    def load(cls, system, image_id: Digest | None) -> "Image":
        """A stored image by ID (one read of its config); None gives scratch."""
        if image_id is None:
            return cls.scratch()
        raw = system.images.raw_config(image_id)
        return cls(image_id, raw, oci.loads_document(raw, f"config of image {image_id.short}"), system=system)

    @classmethod
    def scratch(cls, config: dict | None = None) -> "Image":
        """The empty image (FROM scratch, `import`'s base)."""
        if config is None:
            config = oci.new_config()
        return cls(None, b"", config, blobs=[], size=0)

    # ------------------------------------------------------------ accessors
    @property
    def diff_ids(self) -> list[Digest]:
        if self._diff_ids is None:
            self._diff_ids = oci.diff_ids(self.config)
        return self._diff_ids

    @property
    def chain_ids(self) -> list[Digest]:
        return chain_ids(self.diff_ids)

    @property
    def history(self) -> list:
        return list(self.config.get("history") or [])

    @property
    def container_config(self) -> dict:
        return oci.container_config(self.config)

    @property
    def size(self) -> int:
        """Unpacked size of all layers (the store's record)."""
        if self._size is None:
            self._size = self.record.size
        return self._size

    @property
    def record(self):
        """The store's `ImageRecord` (stored images only)."""
        if self._record is None:
            self._record = self._system.images.get(self.id)
        return self._record

    def layer_blobs(self) -> list:
        """The manifest's layers as `LayerBlob`s (blob descriptor + diff_id), bottom first."""
        if self._blobs is None:
            from lamina.errors import NoSuchImage
            from lamina.store.images import LayerBlob

            manifest = self._system.images.manifest(self.record)
            descs = [oci.Descriptor.from_json(d) for d in manifest.get("layers", [])]
            if len(descs) != len(self.diff_ids):
                raise NoSuchImage(f"{self.id.short} (manifest has {len(descs)} layers, "
                                  f"config {len(self.diff_ids)})")
            self._blobs = [LayerBlob(d, i) for d, i in zip(descs, self.diff_ids)]
        return self._blobs

    def layers(self) -> list:
        """The unpacked layers (`LayerRecord`s), bottom first, unpacking what is missing."""
        if self._unpacked is None:
            if not self.diff_ids:
                self._unpacked = []
            else:
                system = self._system
                self._unpacked = system.layers.ensure(
                    self.diff_ids, lambda i: system.content.open(self.layer_blobs()[i].descriptor.digest))
        return self._unpacked


# ------------------------------------------------------------------ mutate


def edit(base: Image) -> dict:
    """A private copy of the base's config to set fields in (mutate.ConfigFile's input)."""
    import copy

    return copy.deepcopy(base.config)


def append(base: Image, config: dict, entry: dict, layer=None, *, layer_size: int = 0) -> Image:
    """mutate.Append: `config` (an `edit` of base's) with one more history `entry` and,
    when `layer` (a `LayerBlob`) is given, one more layer; without one the entry is
    marked `empty_layer`.  `layer_size` is what the layer adds to the image's size.
    Returns the new image as a value: its ID is the hash of the exact bytes."""
    blobs = list(base.layer_blobs()) if base.id is not None or layer is not None else []
    if layer is None:
        entry["empty_layer"] = True
    config["history"] = base.history + [entry]
    if layer is not None:
        config["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in base.diff_ids] + [str(layer.diff_id)]}
        blobs.append(layer)
    raw = oci.dumps(config)
    return Image(Digest.of_bytes(raw), raw, config, system=base._system, blobs=blobs,
                 size=base.size + (layer_size if layer is not None else 0), parent=base.id)


def publish(system, image: Image, tags: tuple = ()) -> Image:
    """Store a derived image (config, manifest, one transaction); returns it, now stored."""
    system.images.create(image.raw_config, image.layer_blobs(), size=image.size,
                         parent=str(image.parent) if image.parent is not None else None, tags=tags)
    image._system = system  # the ID is the hash of the same bytes: create() returns it too
    return image
