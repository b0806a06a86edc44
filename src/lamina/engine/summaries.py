"""Docker-shaped listings: GET /images/json, /containers/json and /system/df items, with
dockerd's filters (already parsed into {key: [values]}; the API checks the keys; the
containers' own are engine/containerfilters.py's, which `ps --filter` uses too).

What a listing needs per item is read once per request; image labels, which an image ID
fixes for good (the ID is the config's digest), are kept between requests.
"""

from __future__ import annotations

import fnmatch

from lamina.engine.containerfilters import labels_match  # noqa: F401 - the images' label filter too
from lamina.errors import InvalidParameter


def image_summaries(system, *, all_images: bool = False, filters: dict | None = None) -> list[dict]:
    """GET /images/json's items (API 1.41: `<none>:<none>` for an untagged image)."""
    from lamina.engine.images import familiar

    filters = filters or {}
    tags = system.images.all_tags()
    records = system.images.list()
    dangling = filters.get("dangling")
    if dangling and dangling[-1].lower() not in ("true", "false", "1", "0"):
        raise InvalidParameter(f"Invalid filter 'dangling={dangling[-1]}'")
    want_dangling = dangling[-1].lower() in ("true", "1") if dangling else None
    bounds = {}
    for key in ("before", "since"):
        if filters.get(key):
            bounds[key] = system.images.resolve(filters[key][-1]).created
    out = []
    for rec in records:
        names = [familiar(t) for t in sorted(tags.get(str(rec.id), []))]
        digests = [familiar(d) for d in system.images.digests_of(rec.id)]
        if want_dangling is not None and want_dangling != (not names):
            continue
        if not names and not digests and not all_images and want_dangling is None \
                and system.images.children(rec.id):
            continue  # an intermediate image: listed with all=1
        if "before" in bounds and not rec.created < bounds["before"]:
            continue
        if "since" in bounds and not rec.created > bounds["since"]:
            continue
        labels = _labels(system, str(rec.id))
        if filters.get("label") and not labels_match(labels, filters["label"]):
            continue
        if filters.get("reference"):
            names = [n for n in names if any(_ref_match(p, n) for p in filters["reference"])]
            if not names:
                continue
        if not names and not digests:
            names, digests = ["<none>:<none>"], ["<none>@<none>"]
        out.append({"Containers": -1, "Created": int(rec.created), "Id": str(rec.id), "Labels": labels or None,
                    "ParentId": rec.parent or "", "RepoDigests": digests, "RepoTags": names,
                    "SharedSize": -1, "Size": rec.size, "VirtualSize": rec.size})
    return out


_LABELS: dict[str, dict] = {}  # image ID -> its config's labels: an ID names exact config bytes


def _labels(system, image_id: str) -> dict:
    labels = _LABELS.get(image_id)
    if labels is None:
        from lamina.digest import Digest

        labels = (system.images.config(Digest(image_id)).get("config") or {}).get("Labels") or {}
        if len(_LABELS) > 4096:
            _LABELS.clear()
        _LABELS[image_id] = labels
    return labels


def _ref_match(pattern: str, name: str) -> bool:
    """reference.FamiliarMatch: the pattern against `repo:tag`, and against `repo` alone."""
    repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(repo, pattern)


def container_ports(system, rec) -> list[dict]:
    """types.Port items from NetworkSettings.Ports (a running container's)."""
    if not rec.running:
        return []
    from lamina.network import published_ports

    out = []
    for key, bindings in published_ports(system, rec).items():
        number, _, proto = key.partition("/")
        if not number.isdigit():
            continue
        if not bindings:
            out.append({"PrivatePort": int(number), "Type": proto})
        for b in bindings or ():
            public = b.get("HostPort", "")
            out.append({"IP": b.get("HostIp", ""), "PrivatePort": int(number),
                        "PublicPort": int(public) if public.isdigit() else 0, "Type": proto})
    return out


def container_summaries(system, recs, *, size: bool = False) -> list[dict]:
    """GET /containers/json's items for `recs`, with Status, Ports, networks, mounts (and
    SizeRw/SizeRootFs with `size`)."""
    from lamina.engine.containers import listed_image, mounts, size_of, status_text, summary
    from lamina.network import settings

    out = []
    for rec in recs:
        item = summary(rec)
        networks = settings(system, rec).get("Networks") or {}
        # inspect's rows: a named or anonymous volume is {"Type": "volume", "Name": ...}, as dockerd lists it
        item.update(Image=listed_image(system, rec), Ports=container_ports(system, rec),
                    Status=status_text(system, rec), NetworkSettings={"Networks": networks},
                    Mounts=mounts(system, rec))
        if size:
            item["SizeRw"], item["SizeRootFs"] = size_of(system, rec)
        out.append(item)
    return out
