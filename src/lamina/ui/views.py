"""The web view's JSON endpoints: `ROUTES[path](system, query) -> dict`.

Each reads through the engine layer (engine.layerviews, engine.images,
engine.containers, engine.build) and adds what a page needs to draw without
doing arithmetic of its own: human-readable sizes (units.human_size, as the CLI
prints them) and pages of long lists (a 100k-file layer or diff is sent a page
at a time, a file tree one directory at a time).  No HTTP here, so the Engine
API service can mount the same functions under its own paths.

`query` is a dict of str -> str (the first value of each parameter).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

from lamina.errors import UsageError
from lamina.units import human_size

PAGE = 500        # entries of a file tree or a diff per request
MAX_PAGE = 5000


def _h(size: int) -> str:
    return human_size(size, 3)


def _int(query: dict, name: str, default: int, lo: int = 0, hi: int | None = None) -> int:
    text = query.get(name)
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"invalid {name} parameter: {text!r} is not a number") from None
    if value < lo or (hi is not None and value > hi):
        raise UsageError(f"invalid {name} parameter: {value} is out of range")
    return value


def _required(query: dict, name: str) -> str:
    value = query.get(name, "")
    if not value:
        raise UsageError(f"the {name} parameter is required")
    return value


# ------------------------------------------------------------------ the store's picture


def store(system, query: dict) -> dict:
    """The whole picture: the shared-layer forest, the images (which node each ends at),
    and the containers (each a writable layer on its image)."""
    from lamina import oci
    from lamina.digest import Digest, chain_ids
    from lamina.engine.containers import list_containers, size_of
    from lamina.engine.images import list_images
    from lamina.engine.layerviews import forest

    trees = forest(system)
    largest = 0

    def dress(nodes: list[dict]) -> None:
        nonlocal largest
        for n in nodes:
            if n["chain_id"] and not n["size"]:
                # not unpacked yet (a committed or pulled layer is unpacked on first use): its
                # blob's size, as `history` shows it, rather than a flat 0
                blobs = system.images.blob_for_diff_id(Digest(n["diff_id"]))
                n["size"] = blobs[0].size if blobs else 0
            n["size_h"] = _h(n["size"])
            largest = max(largest, n["size"])
            dress(n["children"])

    dress(trees)
    images: dict[str, dict] = {}
    for repo, tag, _, rec in list_images(system):
        key = str(rec.id)
        item = images.get(key)
        if item is None:
            diff_ids = oci.diff_ids(system.images.config(rec.id))
            chains = chain_ids(diff_ids)
            item = images[key] = {"id": key, "short": rec.id.short, "names": [], "layers": len(diff_ids),
                                  "top": str(chains[-1]) if chains else "", "size": rec.size,
                                  "size_h": _h(rec.size), "containers": []}
        if repo != "<none>":
            item["names"].append(f"{repo}:{tag}")
    containers = []
    for rec in list_containers(system, all=True):
        rw, _ = size_of(system, rec)
        largest = max(largest, rw)
        c = {"id": rec.id, "short": rec.id[:12], "name": rec.name, "image_id": rec.image_id,
             "image": rec.image_ref, "state": rec.state, "size_rw": rw, "size_h": _h(rw)}
        containers.append(c)
        if rec.image_id in images:
            images[rec.image_id]["containers"].append(rec.id)
    return {"forest": trees, "images": list(images.values()), "containers": containers,
            "largest": largest}


# ------------------------------------------------------------------ one image's layers


class _Explorations:
    """explore() rescans every layer of an image: keep the last few, keyed by image ID.
    An image ID is the digest of its config, which names its layers, so an entry never
    goes stale; a removed image just stops being asked for."""

    def __init__(self, keep: int = 6) -> None:
        self._keep = keep
        self._done: OrderedDict = OrderedDict()
        self._lock = threading.Lock()  # also makes two requests for one image scan it once

    def get(self, system, image_id: str):
        from lamina.engine.layerviews import explore

        with self._lock:
            hit = self._done.get(image_id)
            if hit is not None:
                self._done.move_to_end(image_id)
                return hit
            result = explore(system, image_id)
            self._done[image_id] = result
            while len(self._done) > self._keep:
                self._done.popitem(last=False)
            return result


EXPLORATIONS = _Explorations()


def _image_id(system, name: str) -> str:
    from lamina.engine.images import get_image
    from lamina.errors import InvalidReference, NoSuchImage

    try:
        return str(get_image(system, name).id)
    except InvalidReference:
        raise NoSuchImage(name) from None


def image(system, query: dict) -> dict:
    """The layer explorer's report of one image (per layer: instruction, size, A/C/D
    counts; the image's efficiency and wasted bytes)."""
    report, _ = EXPLORATIONS.get(system, _image_id(system, _required(query, "id")))
    out = dict(report)
    out["layers"] = [{**row, "size_h": _h(row["size"])} for row in report["layers"]]
    out["size_h"], out["wasted_h"] = _h(report["size"]), _h(report["wasted_bytes"])
    out["inefficient"] = [{**row, "wasted_h": _h(row["wasted"])} for row in report["inefficient"][:20]]
    if not math.isfinite(out["user_wasted_share"]):  # dive's NaN/Inf (no user bytes): JSON has neither
        out["user_wasted_share"] = None
    return out


def files(system, query: dict) -> dict:
    """One directory of a layer (image `id`, layer `index` from 1, directory `under`,
    "" for the root): its direct entries marked A/C/D/U, a page at a time."""
    from lamina.engine.layerviews import layer_entries

    _, ex = EXPLORATIONS.get(system, _image_id(system, _required(query, "id")))
    index = _int(query, "index", 0, 1)
    under = query.get("under", "")
    if under and not under.startswith("/"):
        raise UsageError(f"invalid under parameter: {under!r} is not an absolute path")
    page = layer_entries(ex, index, under=under, depth=1, offset=_int(query, "offset", 0),
                         limit=_int(query, "limit", PAGE, 1, MAX_PAGE))
    for e in page["entries"]:
        e["size_h"] = _h(e["size"])
    page["under"] = under
    return page


# ------------------------------------------------------------------ diffs


def diff(system, query: dict) -> dict:
    """`image diff A B` (images, IMAGE@N, diff IDs, containers), its changes a page at a time."""
    from lamina.engine.layerviews import diff as layer_diff

    result = layer_diff(system, _required(query, "a"), _required(query, "b"))
    return _paged_changes(result, query)


def container(system, query: dict) -> dict:
    """A container's writable layer: its record and its live diff against its image."""
    from lamina.engine.containers import get_container, size_of
    from lamina.engine.layerviews import diff as layer_diff

    rec = get_container(system, _required(query, "id"))
    rw, _ = size_of(system, rec)
    result = _paged_changes(layer_diff(system, rec.image_id, rec.id), query)
    result.update(container={"id": rec.id, "name": rec.name, "image": rec.image_ref, "image_id": rec.image_id,
                             "state": rec.state, "size_rw": rw, "size_h": _h(rw)})
    return result


def _paged_changes(result: dict, query: dict) -> dict:
    offset = _int(query, "offset", 0)
    limit = _int(query, "limit", PAGE, 1, MAX_PAGE)
    changes = result["changes"]
    page = [{**c, "size_h": _h(c["size"]), **({"old_size_h": _h(c["old_size"])} if "old_size" in c else {})}
            for c in changes[offset:offset + limit]]
    s = dict(result["summary"])
    for k in ("added_bytes", "deleted_bytes"):
        s[k + "_h"] = _h(s[k])
    s["net_h"] = ("+" if s["net_bytes"] >= 0 else "-") + _h(abs(s["net_bytes"]))
    end = offset + len(page)
    return {"from": result["from"], "to": result["to"], "shared_layers": result["shared_layers"],
            "summary": s, "total": len(changes), "offset": offset, "changes": page,
            "next_offset": end if end < len(changes) else None}


# ------------------------------------------------------------------ builds


def builds(system, query: dict) -> dict:
    """The recorded builds, newest first (the cache explanations the builder keeps)."""
    from lamina.engine.build import explanation

    out = []
    rec = explanation(system)
    while rec is not None and len(out) < 50:  # the builder keeps the last ones, numbered in a row
        results = [s["result"] for s in rec["steps"]]
        out.append({"id": rec["id"], "created": rec["created"], "context": rec["context"],
                    "dockerfile": rec["dockerfile"], "image": rec["image"], "steps": len(results),
                    "hits": results.count("HIT"), "misses": results.count("MISS")})
        rec = explanation(system, rec["id"] - 1) if rec["id"] > 1 else None
    return {"builds": out}


def build(system, query: dict) -> dict:
    """One build's steps with HIT/MISS and the reason (the last build without `id`)."""
    from lamina.engine.build import explanation
    from lamina.errors import NotFound

    number = _int(query, "id", 0, 1) or None
    rec = explanation(system, number)
    if rec is None:
        raise NotFound(f"no build {number} is recorded" if number else "no build is recorded yet")
    return rec


ROUTES = {
    "/api/store": store,
    "/api/image": image,
    "/api/files": files,
    "/api/diff": diff,
    "/api/container": container,
    "/api/builds": builds,
    "/api/build": build,
}
