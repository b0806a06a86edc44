"""`pull`: an image from a registry into the store, the way docker does it.

Resolve the reference (an index is narrowed to one platform), fetch and check
the config, download the missing layer blobs in parallel (each verified by
size and digest before it becomes visible), unpack the layers bottom-up as
their blobs arrive (LayerStore.ensure checks every diff_id while unpacking),
and publish the image record last.  A failure anywhere leaves no image, no
partial blob and no half-unpacked layer; a retry reuses what was verified.
"""

from __future__ import annotations

from lamina import oci
from lamina.digest import Digest
from lamina.errors import DigestMismatch, RegistryError
from lamina.record import record
from lamina.reference import DEFAULT_DOMAIN, Reference
from lamina.remote.registry import FetchedManifest, Repository, open_repository
from lamina.remote.transport import TransportOptions
from lamina.transfer import manifests
from lamina.transfer.blobs import store_blob
from lamina.transfer.install import Installer, LayerPlan, plan_layers
from lamina.transfer.platforms import Platform, host_platform, is_attestation
from lamina.transfer.streams import Cancelled, InflatingPipe, Pipe
from lamina.transfer.workers import Task, Workers

TYPE_CHECKING = False  # the Progress protocol imports typing: for annotations only
if TYPE_CHECKING:
    from lamina.transfer.progress import Progress

MAX_CONCURRENT_DOWNLOADS = 3  # dockerd's default
MAX_INDEX_DEPTH = 4
STREAM_CHUNKS = 32            # MiB of a streamed layer held between download (which inflates it) and unpack


@record
class PullResult:
    image_id: Digest
    digest: Digest      # of what the reference named (index or manifest): the repo digest
    updated: bool       # False when the tag already pointed at this image


def pull_image(system, ref: Reference, *, progress: Progress, platform: str | None = None,
               config=None) -> PullResult:
    """Pull `ref` into the store (`platform`: a --platform text, or the host's; `config`: where
    credentials come from, the user's docker config.json by default)."""
    from lamina.transfer.platforms import parse_platform

    return Puller(system, progress, platform=parse_platform(platform) if platform else None,
                  config=config).pull(ref)


def pull_if_missing(system, name: str, *, progress: Progress, platform: str | None = None, notice=None):
    """The image record `name`, pulled first when it is not here: what `run`, `create` and
    a build's FROM do (the engine and the builder both call this).  `notice(text)` is
    told before the pull starts (docker's `Unable to find image ... locally`)."""
    from lamina.errors import NoSuchImage
    from lamina.reference import parse

    try:
        return system.images.resolve(name)
    except NoSuchImage:
        pass
    ref = parse(name)
    if notice is not None:
        notice(f"Unable to find image '{ref.familiar}' locally")
    return system.images.get(pull_image(system, ref, progress=progress, platform=platform).image_id)
class Puller:
    def __init__(self, system, progress: Progress, *, platform: Platform | None = None,
                 options: TransportOptions | None = None, config=None) -> None:
        self.system = system
        self.progress = progress
        self.platform = platform
        self.options = options
        self.config = config  # credentials: an Engine API request's X-Registry-Auth, else config.json
        # "Pull complete" is ours to say: after the download is done too (a streamed layer's
        # unpacking can end before its download has said "Download complete")
        self.installer = Installer(system, progress, done=None)

    def pull(self, ref: Reference) -> PullResult:
        repo = open_repository(ref.domain, ref.path, options=self.options, config=self.config)
        try:
            with self.system.lease(f"pull {ref}"):
                return self._pull(ref, repo)
        finally:
            repo.transport.close()

    def _pull(self, ref: Reference, repo: Repository) -> PullResult:
        top, manifest = self._resolve(ref, repo)
        self.progress.line(f"{ref.tag or ref.digest}: Pulling from {ref.path}")  # once it exists, as docker
        raw_config = self._config(repo, manifest)
        diff_ids = oci.diff_ids(oci.loads_document(raw_config, "image config"))
        plans = plan_layers(self.system, manifest.layers, diff_ids)
        have = self._have_image(raw_config, plans)
        if have:  # as dockerd: an image it has is not pulled again, no layer lines
            sizes = [self.installer.size(p, None) for p in plans]
        else:
            sizes = self._fetch_and_unpack(repo, plans)
        return self._publish(ref, top, manifest, raw_config, plans, sizes, have=have)

    def _have_image(self, raw_config: bytes, plans: list[LayerPlan]) -> bool:
        """The image is in the store with these very layers (blobs stored, known to hold
        their diff_ids, unpacked): nothing to fetch, unpack or check."""
        return (self.system.images.exists(Digest.of_bytes(raw_config))
                and not any(p.download or p.unpack or p.verify for p in plans))

    # -- manifests ----------------------------------------------------------------------
    def _resolve(self, ref: Reference, repo: Repository) -> tuple[FetchedManifest, manifests.ImageManifest]:
        shown = ref.familiar_repository if ref.domain == DEFAULT_DOMAIN else ref.path
        shown += f":{ref.tag}" if ref.tag else f"@{ref.digest}"
        what = f"manifest for {shown}"
        top = fetched = repo.get_manifest(ref.digest or ref.tag, familiar=shown)
        media_type, doc = manifests.classify(fetched.raw, fetched.content_type, what, RegistryError)
        seen = {fetched.digest}
        while media_type in oci.INDEX_TYPES:
            if len(seen) > MAX_INDEX_DEPTH:
                raise RegistryError(f"{what}: indexes nested more than {MAX_INDEX_DEPTH} deep")
            entry = self._choose(manifests.index_entries(doc, what, RegistryError), what)
            if entry.descriptor.digest in seen:
                raise RegistryError(f"{what}: index refers to itself")
            fetched = repo.get_manifest(str(entry.descriptor.digest), familiar=f"{shown}@{entry.descriptor.digest}")
            if len(fetched.raw) != entry.descriptor.size:
                raise RegistryError(f"{what}: {entry.descriptor.digest} is {len(fetched.raw)} bytes, "
                                    f"index says {entry.descriptor.size}")
            seen.add(fetched.digest)
            media_type, doc = manifests.classify(fetched.raw, fetched.content_type or entry.descriptor.media_type,
                                                 what, RegistryError)
            if media_type != entry.descriptor.media_type:
                raise RegistryError(f"{what}: {entry.descriptor.digest} is a {media_type}, "
                                    f"index says {entry.descriptor.media_type}")
        return top, manifests.image_manifest(fetched.raw, media_type, doc, what, RegistryError)

    def _choose(self, entries: list[manifests.IndexEntry], what: str) -> manifests.IndexEntry:
        want = self.platform or host_platform()
        images = [e for e in entries if not is_attestation(e.platform)]
        for e in images:
            if want.matches(e.platform):
                return e
        available = ", ".join(sorted({str(e.platform.normalized()) for e in images})) or "none"
        raise RegistryError(f"{what}: no matching manifest for {want} in the manifest list entries "
                            f"(available: {available})")

    def _config(self, repo: Repository, manifest: manifests.ImageManifest) -> bytes:
        desc = manifest.config
        what = f"config {desc.digest} from {repo}"
        if self.system.content.has(desc.digest):
            raw = self.system.content.read(desc.digest)
        else:
            raw = repo.fetch_blob_bytes(desc, "config")
        if len(raw) != desc.size:
            raise RegistryError(f"{what}: size mismatch")
        config = manifests.image_config(raw, manifest, what, RegistryError)
        if config.get("os", "linux") != "linux":
            raise RegistryError(f"image from {repo}: operating system {config.get('os')!r} cannot be used on "
                                "this platform")
        if self.platform is not None:
            actual = Platform(str(config.get("os", "")), str(config.get("architecture", "")),
                              str(config.get("variant", "")))
            if not self.platform.matches(actual):
                raise RegistryError(f"image from {repo} does not match the specified platform: "
                                    f"wanted {self.platform}, actual: {actual.normalized()}")
        return raw

    # -- layers -------------------------------------------------------------------------
    def _fetch_and_unpack(self, repo: Repository, plans: list[LayerPlan]) -> list[int]:
        """Download missing blobs in parallel; unpack in order as they arrive (the
        first layer to unpack is unpacked while it downloads).  Returns each
        layer's size as docker counts it (unpacked bytes)."""
        sizes: list[int] = [0] * len(plans)
        futures: dict[Digest, Task] = {}
        taps: dict[Digest, Pipe] = {}
        early: dict = {}  # digest -> EarlyUnpack: the other layers: unpacked apart while they download
        workers = MAX_CONCURRENT_DOWNLOADS
        try:
            self._fetch_all(repo, plans, sizes, futures, taps, early, workers)
        finally:
            for e in early.values():
                e.discard()  # what was not taken (or after a failure): removed
        return sizes

    def _fetch_all(self, repo, plans, sizes, futures, taps, early, workers) -> None:
        from lamina.transfer.early import EarlyUnpack

        with Workers(workers, "lamina-pull") as pool:
            for p in plans:
                if p.desc.digest in futures:
                    continue
                if p.download:
                    self.progress.status(p.item, "Pulling fs layer")
                    if p.unpack and not taps:
                        taps[p.desc.digest] = InflatingPipe(STREAM_CHUNKS)
                    elif p.unpack:
                        early[p.desc.digest] = EarlyUnpack(self.system.tmp_dir)
                    tee = taps.get(p.desc.digest) or early.get(p.desc.digest)
                    futures[p.desc.digest] = pool.submit(self._download, repo, p, tee)
                elif p.verify:
                    futures[p.desc.digest] = pool.submit(self._verify_local, repo, p)
                elif not p.unpack:
                    self.progress.status(p.item, "Already exists")
            for p in [p for p in plans if p.download][workers:]:
                self.progress.status(p.item, "Waiting")
            try:
                for i, p in enumerate(plans):
                    live = taps.pop(p.desc.digest, None)
                    f = futures.get(p.desc.digest)
                    if live is not None:
                        try:
                            sizes[i] = self._unpack(repo, plans, i, live)
                        except BaseException as e:
                            live.close()
                            cause = f.exception()  # a bad download is the root cause: report that
                            if cause is not None and not isinstance(cause, Cancelled):
                                raise cause from None
                            if isinstance(e.__context__, DigestMismatch):
                                # the unpacker can see the layer end (and mismatch) before the download
                                # has stored the blob, which the unpacker's delete then missed
                                self.system.content.delete(p.desc.digest)
                            raise
                        f.result()
                        self.progress.status(p.item, "Pull complete")
                        continue
                    uncompressed = f.result() if f is not None else None
                    got = early.pop(p.desc.digest, None) if p.unpack else None
                    tree = got.take(p.diff_id, p.desc.digest) if got is not None else None
                    if got is not None:
                        got.discard()
                    if tree is not None:  # verified: unpacked bytes hash to the diff_id, the blob to its digest
                        sizes[i] = self.installer.adopt(plans, i, *tree)
                    elif p.unpack:
                        sizes[i] = self._unpack(repo, plans, i)
                    else:
                        sizes[i] = self.installer.size(p, uncompressed)
                        continue  # its "Pull complete" (downloaded) or "Already exists" is said
                    self.progress.status(p.item, "Pull complete")
            except BaseException:
                for tap in taps.values():
                    tap.close()  # nobody will read these: let their downloads stop
                for e in early.values():
                    e.discard()
                for f in futures.values():
                    pool.cancel(f)
                raise

    def _download(self, repo: Repository, p: LayerPlan, tap: Pipe | None = None) -> int | None:
        total = p.desc.size
        try:
            with repo.open_blob(p.desc) as reader:
                size = store_blob(self.system.content, reader, p.desc, diff_id=p.diff_id if p.verify else None,
                                  on_bytes=lambda n: self.progress.progress(p.item, "Downloading", n, total),
                                  tee=tap)
        except DigestMismatch as e:
            error = RegistryError(f"blob {p.desc.digest} from {repo}: {e}")
            if tap is not None:
                tap.finish(error)
            raise error from None
        except BaseException as e:
            if tap is not None:
                tap.finish(e)
            raise
        # said before the unpacker sees the end of a streamed blob (store_blob verified it), so its
        # "Pull complete" comes after these, as dockerd's lines come
        self.progress.status(p.item, "Verifying Checksum")
        self.progress.status(p.item, "Download complete")
        if tap is not None:
            tap.finish()
        if not p.unpack:
            self.progress.status(p.item, "Pull complete")
        return size

    def _verify_local(self, repo: Repository, p: LayerPlan) -> int:
        try:
            size = self.installer.verify(p)
        except DigestMismatch as e:
            raise RegistryError(f"layer {p.desc.digest} of {repo}: {e}") from None
        self.progress.status(p.item, "Already exists")
        return size

    def _unpack(self, repo: Repository, plans: list[LayerPlan], i: int, live: Pipe | None = None) -> int:
        try:
            return self.installer.unpack(plans, i, drop_on_mismatch=plans[i].download, live=live)
        except DigestMismatch as e:
            raise RegistryError(f"layer {plans[i].desc.digest} from {repo}: {e}") from None

    # -- publishing ---------------------------------------------------------------------
    def _publish(self, ref: Reference, top: FetchedManifest, manifest: manifests.ImageManifest,
                 raw_config: bytes, plans: list[LayerPlan], sizes: list[int], *, have: bool) -> PullResult:
        tags = (ref,) if ref.tag else ()
        image_id = Digest.of_bytes(raw_config)
        if have and all(self._tagged(t, image_id) for t in tags):
            updated = False  # up to date: the image, its blobs and its tag are all there, nothing to write
        else:
            done = self.installer.publish(raw_config, plans, sizes, tags=tags, raw_manifest=manifest.raw)
            updated = bool(done.retagged) if tags else not done.existed
        self.system.images.add_repo_digest(image_id, f"{ref.repository}@{top.digest}")
        self.progress.line(f"Digest: {top.digest}")
        status = "Downloaded newer image for" if updated else "Image is up to date for"
        self.progress.line(f"Status: {status} {ref.familiar}")
        return PullResult(image_id, top.digest, updated)

    def _tagged(self, ref: Reference, image_id: Digest) -> bool:
        from lamina.errors import NoSuchImage

        try:
            return self.system.images.resolve(ref.name).id == image_id
        except NoSuchImage:
            return False
