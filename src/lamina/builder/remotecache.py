"""A build cache shared through any OCI registry (or an OCI layout directory).

`build --cache-to type=registry,ref=REPO[,mode=min|max]` stores each step the
build made or reused as one small image manifest in REPO, tagged `cache-<key>`
by the step's cache key (the local cache's key, builder/cache.py: parent image +
instruction after expansion + ARG values + source content digests; computed
once by the step, used for the lookup and the store alike).  The manifest is the
step image itself (its exact config, so its ID; all its layers) with annotations
naming the key, the parent image, the instruction and when it was written.
`--cache-from` looks a step up there after a local miss; a hit fetches the
config and the missing layer blobs (verified against their diff_ids) and
publishes the image locally, so the rest of the build goes on from it exactly
as from a local hit.  A step that rebuilt its parent still probes: a
reproducible step makes the same image again, and its successors can then hit.

Writing is done once the build succeeded (BuildKit's order); any error then is
a warning.  mode=min (the default) exports the steps of the final image;
mode=max those of every stage.  Layers go gzip-compressed (`compression=` uncompressed,
gzip, zstd), once per layer.  `--cache-ttl` ignores entries written longer ago.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lamina import oci
from lamina.digest import Digest
from lamina.errors import LaminaError, UsageError

TAG_PREFIX = "cache-"
ANN = "dev.lamina.cache."
CREATED = "org.opencontainers.image.created"
PARALLEL = 4


@dataclass(frozen=True)
class CacheSpec:
    kind: str            # registry | local
    where: str           # the repository reference, or the layout directory
    mode: str = "min"    # min | max (exports only)
    compression: str = "gzip"  # uncompressed | gzip | zstd: how layers are sent (exports only; BuildKit's default)


def parse_specs(values, *, export: bool) -> tuple:
    """buildx's --cache-to/--cache-from values (CSV fields; a bare value is a registry ref)."""
    from lamina import csvattrs

    specs = []
    for text in values or ():
        if not text:
            continue
        fields = csvattrs.fields(text)
        if len(fields) == 1 and "=" not in fields[0]:
            specs.append(CacheSpec("registry", fields[0]))
            continue
        attrs = dict(csvattrs.pairs(fields))
        kind = attrs.pop("type", "")
        if not kind:
            raise UsageError(f"type required for {text!r}".replace("'", '"'))
        if kind == "registry":
            where = attrs.get("ref", "")
            from lamina.reference import parse

            parse(where, default_tag=False)  # invalid reference format
        elif kind == "local":
            where = attrs.get("dest" if export else "src", "")
            if not where:
                raise UsageError("local cache exporter requires dest" if export else
                                 "local cache importer requires src")
        else:
            raise UsageError(f"unknown cache {'exporter' if export else 'importer'}: {kind!r}".replace("'", '"'))
        mode = attrs.get("mode", "min") if export else "min"
        if mode not in ("min", "max"):
            raise UsageError(f"invalid cache mode: {mode}")
        compression = attrs.get("compression", "gzip") if export else "gzip"
        if compression != "uncompressed":
            from lamina.transfer.compress import check_compression

            check_compression(compression)
        specs.append(CacheSpec(kind, where, mode, compression))
    return tuple(specs)


def parse_ttl(text: str | None) -> float | None:
    """A Go duration (`90m`, `24h`, `1h30m`) -> seconds."""
    import re

    if not text:
        return None
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise UsageError(f'invalid argument "{text}" for "--cache-ttl" flag: time: invalid duration "{text}"')
    return sum(float(n) * units[u] for n, u in parts)


def tag_for(key: str) -> str:
    return TAG_PREFIX + key


def _open(spec: CacheSpec, *, export: bool):
    from lamina.builder.cachestores import LayoutStore, RegistryStore

    if spec.kind == "registry":
        return RegistryStore(spec.where)
    return LayoutStore(spec.where, create=export)


@dataclass
class _Step:
    key: str
    image: Digest
    parent: str
    instruction: str


class RemoteCache:
    def __init__(self, system, sources: tuple, sinks: tuple, ttl: float | None, warn) -> None:
        self.system = system
        self.sinks = sinks
        self.ttl = ttl
        self.warn = warn            # BuildLog.warning
        self.steps: dict[str, _Step] = {}
        self.finals: list[Digest] = []  # the images of this build (a multi-platform build's: merge)
        self._sources = []
        for spec in sources:
            try:
                self._sources.append(_open(spec, export=False))
            except LaminaError as e:  # an unreadable cache is a slow build, not a failed one
                warn(f"failed to read cache from {spec.where}: {e}")

    # -- lookups ---------------------------------------------------------------------------
    def fetch(self, key: str, parent: str) -> Digest | None:
        """The step image cached under `key` in a --cache-from store, published locally; None on a miss."""
        for store in list(self._sources):
            try:
                raw = store.manifest(tag_for(key))
                if raw is None:
                    continue
                image = self._import(store, raw, key, parent)
            except (LaminaError, OSError) as e:
                self.warn(f"failed to read cache from {store.name}: {e}")
                self._sources.remove(store)
                continue
            if image is not None:
                return image
        return None

    def _import(self, store, raw: bytes, key: str, parent: str) -> Digest | None:
        from lamina.errors import RegistryError
        from lamina.image import Image
        from lamina.store.images import LayerBlob
        from lamina.transfer import manifests
        from lamina.transfer.install import plan_layers

        what = f"cache manifest {tag_for(key)[:18]}… of {store.name}"
        media_type, doc = manifests.classify(raw, oci.OCI_MANIFEST, what, RegistryError)
        man = manifests.image_manifest(raw, media_type, doc, what, RegistryError)
        notes = doc.get("annotations") or {}
        if notes.get(ANN + "key") != key or notes.get(ANN + "parent") != parent:
            return None  # not what the tag promises: a miss, never a wrong image
        if self.ttl is not None and time.time() - oci.parse_time(str(notes.get(CREATED, ""))) > self.ttl:
            return None
        image_id = man.config.digest
        images = self.system.images
        if images.exists(image_id):
            return image_id
        raw_config = _read_small(store, man.config)
        config = oci.loads_document(raw_config, what, RegistryError)
        diff_ids = oci.diff_ids(config)
        if len(diff_ids) != len(man.layers):
            raise RegistryError(f"{what}: {len(man.layers)} layers, config has {len(diff_ids)}")
        below = [] if parent == "scratch" else Image.load(self.system, Digest(parent)).diff_ids
        if diff_ids[:len(below)] != below or len(diff_ids) - len(below) not in (0, 1):
            return None  # a step adds at most one layer on its parent's: anything else is not this step
        plans = plan_layers(self.system, man.layers, diff_ids)
        sizes = _fetch_layers(self.system, store, plans)
        images.create(raw_config, [LayerBlob(p.desc, p.diff_id) for p in plans], size=sum(sizes),
                      parent=None if parent == "scratch" else parent, raw_manifest=raw)
        return image_id

    # -- what the build did ----------------------------------------------------------------
    def note(self, key: str, image: Digest, parent: str, instruction: str) -> None:
        self.steps[key] = _Step(key, image, parent, instruction)

    def merge(self, other: RemoteCache) -> None:
        """The steps (and final images) of another platform's build of the same `build
        --platform a,b`, exported with ours: every platform's steps, not the last's only."""
        other.close()
        self.steps = {**other.steps, **self.steps}
        self.finals += other.finals

    def close(self) -> None:
        for store in self._sources:  # the build is done: no more lookups
            store.close()
        self._sources = []

    def export(self, final: Digest) -> None:
        """Write the steps to every --cache-to store; errors are warnings.  mode=min: the
        steps of `final` (and of the other platforms' images merged in)."""
        self.close()
        if not self.sinks:
            return
        by_image = {str(s.image): s for s in self.steps.values()}
        chain = set()
        for image in {str(final), *map(str, self.finals)}:
            while image in by_image and by_image[image].key not in chain:
                chain.add(by_image[image].key)
                image = by_image[image].parent
        for spec in self.sinks:
            steps = [s for s in self.steps.values() if spec.mode == "max" or s.key in chain]
            try:
                store = _open(spec, export=True)
            except LaminaError as e:
                self.warn(f"failed to export cache to {spec.where}: {e}")
                continue
            try:
                self._export(store, steps, spec.compression)
            except (LaminaError, OSError) as e:
                self.warn(f"failed to export cache to {spec.where}: {e}")
            finally:
                store.close()

    def _export(self, store, steps: list, compression: str) -> None:
        from lamina.image import Image

        content = self.system.content
        blobs: dict = {}
        docs = []
        stamp = oci.now_rfc3339()
        sent: dict = {}  # diff_id -> the descriptor sent for it
        for s in steps:
            image = Image.load(self.system, s.image)
            layers = [_compressed(self.system, l, compression, sent) for l in image.layer_blobs()]
            cfg = oci.Descriptor(oci.OCI_CONFIG, image.id, len(image.raw_config))
            for d in layers + [cfg]:
                blobs[d.digest] = d
            doc = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "config": cfg.to_json(),
                   "layers": [d.to_json() for d in layers],
                   "annotations": {ANN + "key": s.key, ANN + "parent": s.parent,
                                   ANN + "instruction": s.instruction, CREATED: stamp}}
            docs.append((tag_for(s.key), oci.dumps(doc)))

        def send(desc) -> None:
            if not store.has_blob(desc.digest):
                store.put_blob(desc, lambda offset: _opened_at(content, desc.digest, offset))

        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(send, sorted(blobs.values(), key=lambda d: -d.size)))
        for tag, raw in docs:  # after every blob they name (a registry checks)
            store.put_manifest(tag, raw)


def _compressed(system, layer, compression: str, sent: dict) -> oci.Descriptor:
    """The blob to send for a layer: compressed as asked (once per layer: the compressed
    blob is kept and remembered, as push does, so the next export sends it as is)."""
    if layer.diff_id in sent:
        return sent[layer.diff_id]
    desc = layer.descriptor
    if compression != "uncompressed" and desc.digest == layer.diff_id:
        from lamina.store.images import LayerBlob
        from lamina.transfer.compress import MEDIA_TYPES, compress_layer

        wanted = MEDIA_TYPES[compression]
        known = [d for d in system.images.blob_for_diff_id(layer.diff_id)
                 if d.media_type == wanted and system.content.has(d.digest)]
        if known:
            desc = known[0]
        else:
            with ThreadPoolExecutor(PARALLEL) as pool:
                desc = compress_layer(system.content, layer.diff_id, compression, pool)
            system.images.add_layer_blob(LayerBlob(desc, layer.diff_id))
    sent[layer.diff_id] = desc
    return desc


def _opened_at(content, digest: Digest, offset: int):
    f = content.open(digest)
    f.seek(offset)
    return f


def _read_small(store, desc: oci.Descriptor) -> bytes:
    from lamina.errors import RegistryError

    if desc.size > oci.MAX_DOCUMENT:
        raise RegistryError(f"config {desc.digest} of {store.name} is larger than 4 MiB")
    with store.open_blob(desc) as f:
        data = f.read(desc.size + 1)
    if len(data) != desc.size or Digest.of_bytes(data) != desc.digest:
        raise RegistryError(f"config {desc.digest} of {store.name}: digest mismatch")
    return data


def _fetch_layers(system, store, plans: list) -> list[int]:
    """Download the missing blobs (checked against size, digest and diff_id) in parallel;
    the layers are unpacked when a later step mounts them (Image.layers)."""
    from lamina.errors import DigestMismatch, RegistryError
    from lamina.transfer.blobs import store_blob, verify_stored_layer

    def one(p) -> int:
        rec = system.layers.get(p.chain_id)
        try:
            if p.download:
                with store.open_blob(p.desc) as reader:
                    size = store_blob(system.content, reader, p.desc, diff_id=p.diff_id)
            elif p.verify:
                size = verify_stored_layer(system.content, p.desc.digest, p.diff_id)
            else:
                size = None
        except DigestMismatch as e:
            raise RegistryError(f"blob {p.desc.digest} of {store.name}: {e}") from None
        if rec is not None:
            return rec.size
        return size if size is not None else p.desc.size

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, plans))
