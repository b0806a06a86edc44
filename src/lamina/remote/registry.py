"""Distribution-spec primitives for one repository: manifests, blobs, uploads.

These speak the protocol and check what the protocol promises (sizes, the
digest of manifest bytes, upload status codes); what the documents *mean* is
the business of `lamina.transfer`.  Every digest that reaches a URL here is a
validated `Digest`, never a string from a document (CVE-2024-3727).
"""

from __future__ import annotations

import http.client
import urllib.parse

from lamina import oci
from lamina.digest import Digest
from lamina.errors import RegistryError
from lamina.record import record
from lamina.remote.auth import DockerConfig
from lamina.remote.hosts import endpoint
from lamina.remote.transport import Response, TooLarge, Transport, TransportOptions, error_detail

TYPE_CHECKING = False  # typing only for annotations: push and pull start without it
if TYPE_CHECKING:
    from typing import BinaryIO, Callable, Iterator

MANIFEST_ACCEPT = ", ".join((oci.OCI_INDEX, oci.OCI_MANIFEST, oci.DOCKER_LIST, oci.DOCKER_MANIFEST))
MAX_RESUMES = 5
CHUNKED_THRESHOLD = 256 << 20   # blobs above this are uploaded in PATCH chunks of CHUNK_SIZE
CHUNK_SIZE = 128 << 20


@record
class FetchedManifest:
    raw: bytes
    content_type: str
    digest: Digest          # sha256 of raw, checked against what was asked / announced


class Repository:
    def __init__(self, transport: Transport, path: str) -> None:
        self.transport = transport
        self.path = path                      # library/busybox
        self.registry = transport.name        # 127.0.0.1:5000 / docker.io

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"

    def scope(self, actions: str = "pull") -> str:
        return f"repository:{self.path}:{actions}"

    def error(self, what: str, resp: Response) -> RegistryError:
        return RegistryError(f"Error response from registry {self.registry}: {what}: {error_detail(resp)}")

    # -- pull ---------------------------------------------------------------------------
    def get_manifest(self, reference: str, *, familiar: str, limit: int = oci.MAX_DOCUMENT) -> FetchedManifest:
        """GET a manifest or index by tag or digest; verifies the digest of the exact bytes."""
        what = f"manifest for {familiar}"
        url = f"/v2/{self.path}/manifests/{urllib.parse.quote(reference, safe=':')}"
        resp = self.transport.request("GET", url, what=what, headers={"Accept": MANIFEST_ACCEPT},
                                      scopes=(self.scope(),))
        with resp:
            if resp.status == 404:
                raise RegistryError(f"Error response from registry {self.registry}: {what} not found: {error_detail(resp)}")
            if resp.status != 200:
                raise self.error(what, resp)
            try:
                raw = resp.read_limited(limit)
            except TooLarge:
                raise RegistryError(f"Error response from registry {self.registry}: {what} is larger than "
                                    f"{limit >> 20} MiB") from None
            except (OSError, http.client.HTTPException) as e:
                raise RegistryError(f"Error response from registry {self.registry}: {what}: {e}") from None
            content_type = resp.header("Content-Type").split(";")[0].strip()
            announced = resp.header("Docker-Content-Digest")
        digest = Digest.of_bytes(raw)
        if reference.startswith("sha256:") and digest.value != reference:
            raise RegistryError(f"{what} from {self}: digest mismatch (content hashes to {digest})")
        if announced.startswith("sha256:") and announced != digest.value:
            raise RegistryError(f"{what} from {self}: digest mismatch (registry says {announced}, "
                                f"content hashes to {digest})")
        return FetchedManifest(raw, content_type, digest)

    def fetch_blob_bytes(self, desc: oci.Descriptor, what: str) -> bytes:
        """A small blob (a config) read whole and verified by size and digest."""
        if desc.size > oci.MAX_DOCUMENT:
            raise RegistryError(f"{what} {desc.digest} from {self} is larger than 4 MiB")
        reader = self.open_blob(desc)
        try:
            data = reader.read(desc.size + 1)
        finally:
            reader.close()
        if len(data) != desc.size:
            raise RegistryError(f"{what} {desc.digest} from {self}: size mismatch (got {len(data)}"
                                f"{'+' if len(data) > desc.size else ''} bytes, expected {desc.size})")
        if Digest.of_bytes(data) != desc.digest:
            raise RegistryError(f"{what} {desc.digest} from {self}: digest mismatch")
        return data

    def open_blob(self, desc: oci.Descriptor) -> "BlobReader":
        return BlobReader(self, desc)

    # -- push ---------------------------------------------------------------------------
    def blob_exists(self, digest: Digest) -> bool:
        with self.transport.request("HEAD", f"/v2/{self.path}/blobs/{digest}", what=f"blob {digest}",
                                    scopes=(self.scope("pull,push"),)) as resp:
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            raise self.error(f"blob {digest}", resp)

    def start_upload(self, digest: Digest | None, mount_from: str | None = None) -> str | None:
        """POST an upload session (`digest` None: not known yet); with `mount_from`, try a
        cross-repository mount first.  Returns None when the blob was mounted, else the
        upload location."""
        scopes = [self.scope("pull,push")]
        query = ""
        if mount_from and digest is not None:
            scopes.append(f"repository:{mount_from}:pull")
            query = "?" + urllib.parse.urlencode({"mount": str(digest), "from": mount_from})
        url = f"/v2/{self.path}/blobs/uploads/{query}"
        what = f"upload of blob {digest}" if digest else "upload of a new blob"
        with self.transport.request("POST", url, what=what, scopes=tuple(scopes)) as resp:
            if resp.status == 201 and mount_from:
                return None
            if resp.status != 202 or not resp.header("Location"):
                raise self.error(what, resp)
            return urllib.parse.urljoin(self.transport.url(url), resp.header("Location"))

    def cancel_upload(self, location: str) -> None:
        """DELETE an upload session we will not use (a refused mount's); best effort, as
        the registry expires abandoned sessions anyway."""
        try:
            with self.transport.request("DELETE", location, what="upload cancel",
                                        scopes=(self.scope("pull,push"),)):
                pass
        except RegistryError:
            pass

    def upload(self, location: str, digest: Digest, size: int, opener: Callable[[int], BinaryIO]) -> None:
        """Send a blob to an upload session: one PUT, or PATCH chunks + PUT for big blobs.
        `opener(offset)` opens the blob positioned at `offset` (so retries can replay)."""
        what = f"upload of blob {digest}"
        scopes = (self.scope("pull,push"),)
        offset, resyncs = 0, 0
        if size > CHUNKED_THRESHOLD:
            while offset < size:
                n = min(CHUNK_SIZE, size - offset)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(n),
                           "Content-Range": f"{offset}-{offset + n - 1}"}
                body = (lambda o=offset, n=n: _Window(opener(o), n))
                with self.transport.request("PATCH", location, what=what, headers=headers, body=body,
                                            scopes=scopes) as resp:
                    if resp.status == 416 and resyncs < MAX_RESUMES:  # out of step: ask where it stands
                        resyncs += 1
                        offset = self._upload_offset(location, what, scopes)
                        continue
                    if resp.status != 202:
                        raise self.error(what, resp)
                    location = urllib.parse.urljoin(location, resp.header("Location") or location)
                offset += n
        self.finish_upload(location, digest, size - offset, (lambda: opener(offset)) if size - offset else None)

    def upload_stream(self, location: str, chunks: Iterator[bytes], what: str) -> str:
        """PATCH a stream of unknown length (chunked encoding) into an upload session, as
        docker does; cannot be retried.  Returns the session's next location."""
        with self.transport.request("PATCH", location, what=what, body=chunks, scopes=(self.scope("pull,push"),),
                                    headers={"Content-Type": "application/octet-stream"}) as resp:
            if resp.status != 202:
                raise self.error(what, resp)
            return urllib.parse.urljoin(location, resp.header("Location") or location)

    def finish_upload(self, location: str, digest: Digest, size: int = 0,
                      body: Callable[[], BinaryIO] | None = None) -> None:
        """Close an upload session with `PUT ?digest=` (and the blob's last bytes, if any)."""
        what = f"upload of blob {digest}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        url = location + ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": str(digest)})
        with self.transport.request("PUT", url, what=what, headers=headers, body=body,
                                    scopes=(self.scope("pull,push"),)) as resp:
            if resp.status not in (201, 204):
                raise self.error(what, resp)
            got = resp.header("Docker-Content-Digest")
            if got.startswith("sha256:") and got != str(digest):
                raise RegistryError(f"{what} to {self}: registry stored {got}")

    def _upload_offset(self, location: str, what: str, scopes: tuple[str, ...]) -> int:
        with self.transport.request("GET", location, what=what, scopes=scopes) as resp:
            rng = resp.header("Range")
            if resp.status != 204 or "-" not in rng:
                raise self.error(what, resp)
            return int(rng.split("-", 1)[1]) + 1

    def put_manifest(self, reference: str, raw: bytes, media_type: str) -> Digest:
        what = f"manifest for {self.path}:{reference}"
        url = f"/v2/{self.path}/manifests/{urllib.parse.quote(reference, safe=':')}"
        with self.transport.request("PUT", url, what=what, headers={"Content-Type": media_type}, body=raw,
                                    scopes=(self.scope("pull,push"),)) as resp:
            if resp.status not in (200, 201, 202):
                raise self.error(what, resp)
            digest = Digest.of_bytes(raw)
            got = resp.header("Docker-Content-Digest")
            if got.startswith("sha256:") and got != str(digest):
                raise RegistryError(f"{what} to {self}: registry computed {got}, we sent {digest}")
            return digest


class _Window:
    """At most `n` bytes of a stream (one PATCH chunk)."""

    def __init__(self, f: BinaryIO, n: int) -> None:
        self._f, self._left = f, n

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()


class BlobReader:
    """A blob GET that reads at most size+1 bytes and resumes with `Range` after a
    dropped connection.  Verification (digest) is the consumer's job: it sees
    every byte exactly once, in order."""

    def __init__(self, repo: Repository, desc: oci.Descriptor) -> None:
        self.repo = repo
        self.desc = desc
        self.offset = 0
        self._resumes = 0
        self._resp: Response | None = None
        self._open(0)

    @property
    def what(self) -> str:
        return f"blob {self.desc.digest} from {self.repo}"

    def _open(self, offset: int) -> None:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.repo.transport.request("GET", f"/v2/{self.repo.path}/blobs/{self.desc.digest}",
                                           what=f"blob {self.desc.digest}", headers=headers,
                                           scopes=(self.repo.scope(),))
        if resp.status == 404:
            raise RegistryError(f"{self.what}: not found: {error_detail(resp)}")
        if offset and resp.status == 416:
            resp.close()
            raise RegistryError(f"{self.what}: size mismatch (registry has {offset} bytes, "
                                f"descriptor says {self.desc.size})")
        if offset and resp.status == 206:
            start = resp.header("Content-Range").removeprefix("bytes ").split("-", 1)[0]
            if start != str(offset):
                resp.close()
                raise RegistryError(f"{self.what}: bad Content-Range on resume")
        elif resp.status == 200:
            if resp.length is not None and resp.length > self.desc.size:
                resp.close()
                raise RegistryError(f"{self.what}: size mismatch (registry sends {resp.length} bytes, "
                                    f"descriptor says {self.desc.size})")
            if offset:  # no Range support: skip what we already have
                _skip(resp, offset, self.what)
        else:
            raise self.repo.error(f"blob {self.desc.digest}", resp)
        self._resp = resp

    def read(self, n: int = -1) -> bytes:
        # never more than size+1: a longer body is a mismatch, not something to store
        left = self.desc.size + 1 - self.offset
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        while True:
            try:
                data = self._resp.read(n)
            except (OSError, http.client.HTTPException) as e:
                self._resume(e)
                continue
            if not data and self.offset < self.desc.size:
                self._resume(None)  # early EOF without an error (no Content-Length)
                continue
            self.offset += len(data)
            return data

    def _resume(self, cause: BaseException | None) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        self._resumes += 1
        if self._resumes > MAX_RESUMES:
            reason = f"{cause}" if cause else "connection closed early"
            raise RegistryError(f"{self.what}: truncated at {self.offset} of {self.desc.size} bytes "
                                f"({reason or type(cause).__name__}; gave up after {MAX_RESUMES} resumes)")
        self.repo.transport.sleep(self.repo.transport.options.backoff * self._resumes)
        self._open(self.offset)

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    def __enter__(self) -> "BlobReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _skip(resp: Response, n: int, what: str) -> None:
    while n > 0:
        data = resp.read(min(n, 1 << 20))
        if not data:
            raise RegistryError(f"{what}: truncated while skipping to resume offset")
        n -= len(data)


def open_repository(domain: str, path: str, *, options: TransportOptions | None = None,
                    config: DockerConfig | None = None) -> Repository:
    """A client for `domain/path` with the user's credentials for `domain`."""
    creds = (config or DockerConfig()).get(domain)
    return Repository(Transport(endpoint(domain), creds, options or TransportOptions.from_env()), path)
