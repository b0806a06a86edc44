"""Where a shared build cache lives: a registry repository or an OCI layout directory.

Both hold ordinary OCI content: blobs, and one image manifest per cached step,
named by a tag derived from the step's cache key (builder/remotecache.py).  A
store answers five questions — the manifest under a tag, a blob's bytes, does a
blob exist, put a blob, put a manifest under a tag — so the cache logic is the
same for both.  Nothing here is shared mutable state that concurrent writers
fight over: blobs are content-addressed and every tag names one key, whose
content is the same whoever writes it.  (The layout's index.json is the one
shared file: it is rewritten under an exclusive lock, merged, never clobbered.)
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import tempfile
from typing import BinaryIO, Callable

from lamina import oci
from lamina.digest import Digest
from lamina.errors import RegistryError

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"


class RegistryStore:
    """A repository of a registry (remote/registry.py's protocol primitives)."""

    def __init__(self, ref_text: str) -> None:
        from lamina.reference import parse
        from lamina.remote.registry import open_repository

        ref = parse(ref_text, default_tag=False)
        self.name = ref.repository
        self.repo = open_repository(ref.domain, ref.path)

    def manifest(self, tag: str) -> bytes | None:
        try:
            return self.repo.get_manifest(tag, familiar=f"{self.name}:{tag}").raw
        except RegistryError as e:
            if "not found" in str(e):
                return None
            raise

    def open_blob(self, desc: oci.Descriptor) -> BinaryIO:
        return self.repo.open_blob(desc)

    def has_blob(self, digest: Digest) -> bool:
        return self.repo.blob_exists(digest)

    def put_blob(self, desc: oci.Descriptor, opener: Callable[[int], BinaryIO]) -> None:
        location = self.repo.start_upload(desc.digest)
        self.repo.upload(location, desc.digest, desc.size, opener)

    def put_manifest(self, tag: str, raw: bytes) -> None:
        self.repo.put_manifest(tag, raw, oci.OCI_MANIFEST)

    def close(self) -> None:
        self.repo.transport.close()


class LayoutStore:
    """An OCI image layout directory (BuildKit's `type=local` cache): blobs/sha256/<hex>,
    index.json whose manifests carry the tag as org.opencontainers.image.ref.name."""

    def __init__(self, path: str, *, create: bool) -> None:
        self.name = path
        self.path = path
        if create:
            os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
            layout = os.path.join(path, "oci-layout")
            if not os.path.exists(layout):
                self._write(layout, OCI_LAYOUT)
        elif not os.path.isfile(os.path.join(path, "index.json")):
            raise RegistryError(f"could not read {os.path.join(path, 'index.json')}: no such file or directory")
        self._index: dict | None = None

    def _blob(self, digest: Digest) -> str:
        return os.path.join(self.path, "blobs", "sha256", digest.hex)

    def _write(self, path: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.rename(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def _entries(self) -> dict:
        if self._index is None:
            try:
                with open(os.path.join(self.path, "index.json"), "rb") as f:
                    doc = oci.loads_document(f.read(), f"{self.path}/index.json", RegistryError)
            except FileNotFoundError:
                doc = {}
            self._index = {m.get("annotations", {}).get(REF_NAME): m for m in doc.get("manifests") or []
                           if isinstance(m, dict)}
        return self._index

    def manifest(self, tag: str) -> bytes | None:
        entry = self._entries().get(tag)
        if entry is None:
            return None
        desc = oci.Descriptor.from_json(entry)
        if not self.has_blob(desc.digest):
            return None
        with open(self._blob(desc.digest), "rb") as f:
            raw = f.read(oci.MAX_DOCUMENT + 1)
        if Digest.of_bytes(raw) != desc.digest:
            raise RegistryError(f"{self.path}: manifest {desc.digest} is corrupt")
        return raw

    def open_blob(self, desc: oci.Descriptor) -> BinaryIO:
        try:
            return open(self._blob(desc.digest), "rb")
        except FileNotFoundError:
            raise RegistryError(f"{self.path}: blob {desc.digest} not found") from None

    def has_blob(self, digest: Digest) -> bool:
        return os.path.isfile(self._blob(digest))

    def put_blob(self, desc: oci.Descriptor, opener: Callable[[int], BinaryIO]) -> None:
        import shutil

        path = self._blob(desc.digest)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, opener(0) as src:
                shutil.copyfileobj(src, out, 1 << 20)
            os.rename(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def put_manifest(self, tag: str, raw: bytes) -> None:
        digest = Digest.of_bytes(raw)
        self.put_blob(oci.Descriptor(oci.OCI_MANIFEST, digest, len(raw)), lambda _o: io.BytesIO(raw))
        entry = {**oci.Descriptor(oci.OCI_MANIFEST, digest, len(raw)).to_json(), "annotations": {REF_NAME: tag}}
        # concurrent exports into one directory: read-merge-write under a lock
        with open(os.path.join(self.path, "index.json.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._index = None
            entries = self._entries()
            entries[tag] = entry
            doc = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX,
                   "manifests": [entries[k] for k in sorted(entries, key=str)]}
            self._write(os.path.join(self.path, "index.json"), json.dumps(doc, separators=(",", ":")).encode())

    def close(self) -> None:
        pass
