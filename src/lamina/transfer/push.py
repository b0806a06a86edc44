"""`push`: a local image to a registry, the way docker does it.

Per layer (in parallel): find or make its compressed blob, skip it when the
registry has it (HEAD), mount it from another repository of the same registry
when we know one that should have it, upload it otherwise.  Then the config,
then the manifest.  Local layers are uncompressed, so the manifest we push
usually differs from the local one; its digest is recorded as a repo digest.
"""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lamina import oci
from lamina.digest import Digest
from lamina.errors import InvalidReference, NoSuchImage, NotFound, RegistryError
from lamina.reference import Reference, parse
from lamina.remote.registry import Repository, open_repository
from lamina.remote.transport import TransportOptions
from lamina.store.images import ImageRecord, LayerBlob
from lamina.transfer.compress import COMPRESSED_TYPES, MEDIA_TYPES, compress_layer
from lamina.transfer.progress import CountingReader, Progress
from lamina.transfer.streams import Cancelled, Pipe

MAX_CONCURRENT_UPLOADS = 5  # dockerd's default
STREAM_CHUNKS = 32          # compressed chunks held between the compressor and the upload
_FAMILY_TYPES = {
    "docker": {"gzip": oci.DOCKER_LAYER_GZIP, "config": oci.DOCKER_CONFIG, "manifest": oci.DOCKER_MANIFEST},
    "oci": {"gzip": oci.OCI_LAYER_GZIP, "zstd": oci.OCI_LAYER_ZSTD, "config": oci.OCI_CONFIG,
            "manifest": oci.OCI_MANIFEST},
}


@dataclass(frozen=True)
class PushResult:
    digest: Digest
    size: int
    media_type: str = ""


class Pusher:
    def __init__(self, system, progress: Progress, *, compression: str = "gzip",
                 options: TransportOptions | None = None, config=None) -> None:
        self.system = system
        self.progress = progress
        self.compression = compression
        self.options = options
        self.config = config  # credentials: an Engine API request's X-Registry-Auth, else config.json
        self._db_lock = threading.Lock()  # workers share the main thread's SQLite connection

    def push(self, ref: Reference) -> PushResult:
        if ref.digest and not ref.tag:
            raise InvalidReference(f"cannot push a digest reference: {ref.familiar}")
        # dockerd names the repository before it looks for the image: the line comes first either way
        self.progress.line(f"The push refers to repository [{ref.repository}]")
        try:
            record = self.system.images.resolve(ref.name)
        except NoSuchImage:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_repository}") from None
        repo = open_repository(ref.domain, ref.path, options=self.options, config=self.config)
        try:
            with self.system.lease(f"push {ref}"):  # the compressed blobs it makes
                from lamina.transfer.multiplatform import index_of

                found = index_of(self.system, ref.name)  # a multi-platform tag: each member, then the index
                if found is not None:
                    from lamina.transfer.pushindex import push_index

                    return push_index(self, ref, repo, found[1])
                return self._push(ref, record, repo)
        finally:
            repo.transport.close()

    def _push(self, ref: Reference, record: ImageRecord, repo: Repository, *, by_digest: bool = False) -> PushResult:
        images = self.system.images
        layers = images.layer_blobs(record)
        unique = list({l.diff_id: l for l in layers}.values())
        cached = {l.diff_id: self._cached_blob(l) for l in unique}  # DB reads stay on this thread
        mount_from = self._mount_source(record, ref)
        for l in reversed(unique):
            self.progress.status(l.diff_id.short, "Preparing")
        workers = min(MAX_CONCURRENT_UPLOADS, max(1, len(unique)))
        with ThreadPoolExecutor(workers) as uploads, ThreadPoolExecutor(os.cpu_count() or 2) as cpu:
            futures = {l.diff_id: uploads.submit(self._push_layer, repo, l, cached[l.diff_id], mount_from, cpu)
                       for l in unique}
            try:
                pushed = {d: f.result() for d, f in futures.items()}
            except BaseException:
                for f in futures.values():
                    f.cancel()
                raise
        raw_config = images.raw_config(record.id)
        self._push_config(repo, record.id, raw_config)
        raw, media_type = self._manifest(record, layers, pushed, raw_config)
        # an index member goes by its digest, the index gets the tag (transfer/pushindex.py)
        digest = repo.put_manifest(str(Digest.of_bytes(raw)) if by_digest else ref.tag or "latest", raw, media_type)
        images.add_repo_digest(record.id, f"{ref.repository}@{digest}")
        if not by_digest:
            self.progress.line(f"{ref.tag or 'latest'}: digest: {digest} size: {len(raw)}")
        return PushResult(digest, len(raw), media_type)

    # -- layers -------------------------------------------------------------------------
    def _cached_blob(self, layer: LayerBlob) -> oci.Descriptor | None:
        """The blob to send for a layer if we have one already (compressed as wanted)."""
        if layer.descriptor.media_type in COMPRESSED_TYPES:
            return layer.descriptor
        wanted = MEDIA_TYPES[self.compression]
        for d in self.system.images.blob_for_diff_id(layer.diff_id):
            if d.media_type == wanted and self.system.content.has(d.digest):
                return d
        return None

    def _push_layer(self, repo: Repository, layer: LayerBlob, desc: oci.Descriptor | None,
                    mount_from: str | None, cpu) -> oci.Descriptor:
        item = layer.diff_id.short
        if desc is None:
            return self._compress_and_send(repo, layer, cpu)
        if repo.blob_exists(desc.digest):
            self.progress.status(item, "Layer already exists")
            return desc
        location = repo.start_upload(desc.digest, mount_from)
        if location is None:
            self.progress.status(item, f"Mounted from {mount_from}")
            return desc
        self._send_stored(repo, location, desc, item)
        return desc

    def _send_stored(self, repo: Repository, location: str, desc: oci.Descriptor, item: str) -> None:
        content = self.system.content
        # Uploads are cut into retried ranges, so no one read sees the whole blob: check it
        # first (the registry would refuse a corrupt blob too, but not say it is ours).
        with content.open_verified(desc.digest) as blob:
            blob.drain()

        def opener(offset: int):
            f = content.open(desc.digest)
            f.seek(offset)
            return CountingReader(f, lambda n: self.progress.progress(item, "Pushing", n, desc.size), offset)

        repo.upload(location, desc.digest, desc.size, opener)
        self.progress.status(item, "Pushed")

    def _compress_and_send(self, repo: Repository, layer: LayerBlob, cpu) -> oci.Descriptor:
        """Compress a layer into the store while streaming the same bytes to the
        registry (one chunked PATCH, as docker does), so compressing and uploading
        overlap.  The stream cannot be replayed: if it fails, the blob just made is
        uploaded again the ordinary way, with retries."""
        item = layer.diff_id.short
        what = f"upload of layer {layer.diff_id}"
        location = repo.start_upload(None)
        pipe = Pipe(STREAM_CHUNKS)
        sent: dict = {}

        def chunks():
            while chunk := pipe.read(1 << 20):
                yield chunk

        def send() -> None:
            try:
                sent["location"] = repo.upload_stream(location, chunks(), what)
            except BaseException as e:  # noqa: BLE001 - reported through the fallback below
                sent["error"] = e
                pipe.close()

        def tee(data: bytes) -> None:
            try:
                pipe.put(data)
            except Cancelled:
                pass  # the stream failed: keep compressing into the store for the fallback

        sender = threading.Thread(target=send, name="lamina-push-stream", daemon=True)
        sender.start()
        total = layer.descriptor.size
        try:
            desc = compress_layer(self.system.content, layer.descriptor.digest, self.compression, cpu,
                                  on_bytes=lambda n: self.progress.progress(item, "Pushing", n, total), tee=tee)
        except BaseException as e:
            pipe.finish(e)
            sender.join()
            raise
        pipe.finish()
        sender.join()
        with self._db_lock:
            self.system.images.add_layer_blob(LayerBlob(desc, layer.diff_id))
        if "error" not in sent:
            try:
                repo.finish_upload(sent["location"], desc.digest)
                self.progress.status(item, "Pushed")
                return desc
            except RegistryError:
                pass
        self._send_stored(repo, repo.start_upload(desc.digest), desc, item)
        return desc

    def _mount_source(self, record: ImageRecord, ref: Reference) -> str | None:
        """Another repository on the same registry that this image came from or went to."""
        names = self.system.images.digests_of(record.id) + self.system.images.tags_of(record.id)
        for name in names:
            try:
                other = parse(name)
            except InvalidReference:
                continue
            if other.domain == ref.domain and other.path != ref.path:
                return other.path
        return None

    def _push_config(self, repo: Repository, image_id: Digest, raw_config: bytes) -> None:
        if repo.blob_exists(image_id):
            return
        location = repo.start_upload(image_id)
        repo.upload(location, image_id, len(raw_config), lambda offset: io.BytesIO(raw_config[offset:]))

    # -- manifest -----------------------------------------------------------------------
    def _manifest(self, record: ImageRecord, layers: list[LayerBlob], pushed: dict[Digest, oci.Descriptor],
                  raw_config: bytes) -> tuple[bytes, str]:
        """The local manifest when it already names the blobs we pushed, else a new one."""
        local = self.system.images.manifest(record)
        descs = [pushed[l.diff_id] for l in layers]
        if descs == [l.descriptor for l in layers]:
            return self.system.images.raw_manifest(record), local.get("mediaType") or oci.OCI_MANIFEST
        kinds = [COMPRESSED_TYPES[d.media_type] for d in descs]
        family = "docker" if local.get("mediaType") == oci.DOCKER_MANIFEST and set(kinds) <= {"gzip"} else "oci"
        types = _FAMILY_TYPES[family]
        doc = {
            "schemaVersion": 2,
            "mediaType": types["manifest"],
            "config": oci.Descriptor(types["config"], record.id, len(raw_config)).to_json(),
            "layers": [oci.Descriptor(types[k], d.digest, d.size).to_json() for k, d in zip(kinds, descs)],
        }
        return oci.dumps(doc), types["manifest"]

