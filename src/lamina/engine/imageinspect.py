"""`inspect IMAGE`: the document GET /images/{name}/json returns (Engine API 1.41).

Apart from engine/images.py so that `lamina inspect IMAGE` reads the image's row,
its tags and its config blob without importing the image store, the `Image` value or
the other image operations: its whole run is a few ms, and docker's CLI answers in ~15.
"""

from __future__ import annotations


def inspect_image(system, record) -> dict:
    """The inspect document of an image: a record (ImageRecord) or a name docker resolves."""
    from lamina.digest import Digest
    from lamina.leanjson import loads_document

    if isinstance(record, str):
        from lamina.store.tags import image_row

        image_id, _, parent, _, size = image_row(system.db, record)
    else:
        image_id, parent, size = str(record.id), record.parent, record.size
    config = loads_document(system.content.read(Digest(image_id)), f"config of image {image_id[7:19]}")
    # oci.diff_ids' values (each checked as a Digest), without importing oci
    layers = [str(Digest(d)) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
    names, last_tag = [], None
    for name, tagged in system.db.execute("SELECT name, tagged FROM tags WHERE image_id=?", (image_id,)):
        names.append(name)
        last_tag = tagged if last_tag is None or tagged > last_tag else last_tag
    digests = system.db.execute("SELECT name FROM repo_digests WHERE image_id=? ORDER BY name", (image_id,))
    if last_tag:
        from lamina.units import rfc3339

        last_tag = rfc3339(last_tag)
    return {
        "Id": image_id,
        "RepoTags": [familiar(t) for t in sorted(names)],  # as docker's reference store
        "RepoDigests": [familiar(d) for d, in digests],
        "Parent": parent or "",
        "Comment": _comment(config),
        "Created": config.get("created", ""),
        "Container": config.get("container", ""),
        "ContainerConfig": config.get("container_config") or _empty_container_config(),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config") or _empty_container_config(),
        "Architecture": config.get("architecture", ""),
        **({"Variant": config["variant"]} if config.get("variant") else {}),
        "Os": config.get("os", ""),
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": None, "Name": system.snapshotter_name},
        "RootFS": {"Type": "layers", "Layers": layers},
        "Metadata": {"LastTagTime": last_tag or "0001-01-01T00:00:00Z"},
    }


def _empty_container_config() -> dict:
    """oci's, imported only for an image whose config lacks one (ours and docker's have both)."""
    from lamina.oci import empty_container_config

    return empty_container_config()


def _comment(config: dict) -> str:
    """The image's comment, else its last history entry's: where docker's commit
    keeps `-m` (the config has no `comment`)."""
    if config.get("comment"):
        return config["comment"]
    history = config.get("history") or []
    return (history[-1].get("comment") or "") if history else ""


def familiar(name: str) -> str:
    """A stored `name:tag` or `name@digest` as docker shows it (`busybox:latest`)."""
    from lamina.reference import parse

    if "@" in name:
        repo, _, digest = name.partition("@")
        return f"{parse(repo).familiar_repository}@{digest}"
    return parse(name).familiar
