"""`push`: a local image to a registry, the way docker does it.

Per layer (in parallel): find or make its compressed blob, skip it when the
registry has it (HEAD), mount it from another repository of the same registry
that should have it (one this store pulled it from or pushed it to, as dockerd
remembers), upload it otherwise.  Then the config,
then the manifest.  Local layers are uncompressed, so the manifest we push
usually differs from the local one; its digest is recorded as a repo digest.
"""

from __future__ import annotations

import io
import os
import threading

from lamina import oci
from lamina.digest import Digest
from lamina.errors import InvalidReference, LaminaError, NoSuchImage, NotFound, RegistryError
from lamina.leanjson import dumps
from lamina.record import record
from lamina.reference import Reference, parse
from lamina.remote.registry import Repository, open_repository
from lamina.remote.transport import TransportOptions
from lamina.store.images import ImageRecord, LayerBlob
from lamina.transfer.compress import COMPRESSED_TYPES, MEDIA_TYPES, compress_layer
from lamina.transfer.progress import CountingReader
from lamina.transfer.streams import Cancelled, Pipe
from lamina.transfer.workers import Workers

TYPE_CHECKING = False  # the Progress protocol imports typing: for annotations only
if TYPE_CHECKING:
    from lamina.transfer.progress import Progress

MAX_CONCURRENT_UPLOADS = 5  # dockerd's default
MAX_MOUNT_ATTEMPTS = 3      # source repositories tried per layer (dockerd: 1 to 4, by layer size)
STREAM_CHUNKS = 32          # compressed chunks held between the compressor and the upload
_FAMILY_TYPES = {
    "docker": {"gzip": oci.DOCKER_LAYER_GZIP, "config": oci.DOCKER_CONFIG, "manifest": oci.DOCKER_MANIFEST},
    "oci": {"gzip": oci.OCI_LAYER_GZIP, "zstd": oci.OCI_LAYER_ZSTD, "config": oci.OCI_CONFIG,
            "manifest": oci.OCI_MANIFEST},
}


@record
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
        self._sources: dict[Digest, list[str]] | None = None

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
        self._sources = None  # read when a layer turns out not to be on the registry (_sources_of)
        order = unique[::-1]  # dockerd's: the top layer first, each queued for one of its upload slots
        for l in order:
            self.progress.status(l.diff_id.short, "Preparing")
        for l in order[MAX_CONCURRENT_UPLOADS:]:  # no slot free when queued: dockerd's transfer manager says so
            self.progress.status(l.diff_id.short, "Waiting")
        workers = min(MAX_CONCURRENT_UPLOADS, max(1, len(unique)))
        # the compressors outlive the uploads that feed them (left last: its exit waits for theirs)
        with Workers(os.cpu_count() or 2, "lamina-gzip") as cpu, Workers(workers, "lamina-push") as uploads:
            futures = {l.diff_id: uploads.submit(self._push_layer, repo, ref, l, cached[l.diff_id], cpu)
                       for l in order}
            try:
                pushed = {d: f.result() for d, f in futures.items()}
            except BaseException:
                for f in futures.values():
                    uploads.cancel(f)
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

    def _push_layer(self, repo: Repository, ref: Reference, layer: LayerBlob, desc: oci.Descriptor | None,
                    cpu) -> oci.Descriptor:
        item = layer.diff_id.short
        if desc is None:
            return self._compress_and_send(repo, layer, cpu)
        if repo.blob_exists(desc.digest):
            self.progress.status(item, "Layer already exists")
            return desc
        location = None
        for source in self._sources_of(ref, layer.diff_id)[:MAX_MOUNT_ATTEMPTS]:
            if location is not None:  # the last refusal's session is kept for the upload
                repo.cancel_upload(location)
            location = repo.start_upload(desc.digest, source)
            if location is None:
                self.progress.status(item, f"Mounted from {source}")
                return desc
        if location is None:
            location = repo.start_upload(desc.digest)
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

    def _sources_of(self, ref: Reference, diff_id: Digest) -> list[str]:
        """_mount_sources for one layer, read once per push and only when some layer needs it
        (it reads the config of every image pushed to or pulled from this registry)."""
        with self._db_lock:
            if self._sources is None:
                self._sources = self._mount_sources(ref)
            return self._sources.get(diff_id, [])

    def _mount_sources(self, ref: Reference) -> dict[Digest, list[str]]:
        """Per diff_id, the other repositories of this registry that should hold its blob,
        likeliest first.  dockerd keeps, per layer, the repositories it pulled it from or
        pushed it to (its V2MetadataService); ours is the repo digests, each naming a
        repository that holds every layer of its image.  Sorted as dockerd sorts them
        (distribution/push_v2.go): most leading path components shared with the target
        first, then the newest."""
        prefix = ref.domain + "/"
        rows = self.system.db.execute(
            "SELECT name, image_id FROM repo_digests WHERE substr(name, 1, ?) = ? ORDER BY rowid DESC",
            (len(prefix), prefix)).fetchall()
        sources: dict[Digest, list[str]] = {}
        layers: dict[str, list[Digest]] = {}  # image id -> its diff_ids, read once
        for name, image_id in rows:
            try:
                other = parse(name)
                if other.path == ref.path:
                    continue
                if image_id not in layers:
                    layers[image_id] = oci.diff_ids(self.system.images.config(Digest(image_id)))
            except (LaminaError, OSError):  # a name or image gone bad: not a source
                continue
            for diff_id in layers[image_id]:
                found = sources.setdefault(diff_id, [])
                if other.path not in found:
                    found.append(other.path)
        target = ref.path.split("/")
        for found in sources.values():
            found.sort(key=lambda path: -_common_prefix(path.split("/"), target))  # stable: newest first
        return sources

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
        # oci.dumps' bytes (the text is ASCII: media types, digests, sizes) without importing json
        return dumps(doc, (",", ":")).encode(), types["manifest"]


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
