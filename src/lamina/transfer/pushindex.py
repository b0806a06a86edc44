"""`push` of a multi-platform tag: every member image by digest, then the OCI index.

The members' manifests are pushed as `push` makes them (compressed layers: a new
manifest digest), so the index pushed lists those digests, with the platforms of the
local index; it goes under the tag, as buildx's `--push` of a multi-platform build.
"""

from __future__ import annotations

from lamina import oci
from lamina.digest import Digest
from lamina.errors import NotFound


def push_index(pusher, ref, repo, doc: dict):
    from lamina.transfer.multiplatform import indexes
    from lamina.transfer.push import PushResult

    system = pusher.system
    store = indexes(system)
    manifests = []
    for entry in doc.get("manifests") or []:
        image_id = store.image_for_manifest(Digest(entry["digest"]))
        if image_id is None:
            raise NotFound(f"{ref.familiar}: the image of platform {_platform_text(entry)} is not in the store")
        pushed = pusher._push(ref, system.images.get(image_id), repo, by_digest=True)
        item = {"mediaType": pushed.media_type or oci.OCI_MANIFEST, "digest": str(pushed.digest),
                "size": pushed.size}
        if entry.get("platform"):
            item["platform"] = entry["platform"]
        manifests.append(item)
    raw = oci.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": manifests})
    digest = repo.put_manifest(ref.tag or "latest", raw, oci.OCI_INDEX)
    pusher.progress.line(f"{ref.tag or 'latest'}: digest: {digest} size: {len(raw)}")
    return PushResult(digest, len(raw), oci.OCI_INDEX)


def _platform_text(entry: dict) -> str:
    p = entry.get("platform") or {}
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
