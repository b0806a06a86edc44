"""System operations: info, version, check, prune.

`info` and `version` return docker-shaped facts (GET /info, GET /version) as
dicts; `check` returns the store's problems and notes; `prune` removes what no
image uses and says how much it reclaimed.
"""

from __future__ import annotations

from lamina import __version__ as VERSION


def info(system) -> dict:
    """GET /info's facts lamina has.  The runtime is optional: when none can be
    found `Runtime` is None and `RuntimeError` says why (still worth showing the rest)."""
    from lamina import rootless
    from lamina.errors import LaminaError

    containers = system.containers.list()
    running = sum(1 for c in containers if c.running)
    facts = {
        "Containers": len(containers), "ContainersRunning": running, "ContainersStopped": len(containers) - running,
        "Images": len(system.images.list()), "ServerVersion": f"lamina {VERSION}",
        "Driver": system.snapshotter.name, "LaminaRootDir": system.root, "Runtime": None, "RuntimeError": None,
        "Rootless": rootless(),  # an ordinary user's lamina, in its user namespace (lamina/userns.py)
    }
    try:
        facts["Runtime"] = system.runtime
    except LaminaError as e:
        facts["RuntimeError"] = str(e)
    return facts


def runtime_without_store(root: str | None = None, runtime: str | None = None):
    """The OCI runtime `run` would use, found without opening the store (its facts are
    cached only where the store already exists); None when there is none."""
    import os

    from lamina import runtime_state_root, store_root
    from lamina.errors import LaminaError
    from lamina.runtime.oci import select_runtime

    try:
        return select_runtime(runtime or os.environ.get("LAMINA_RUNTIME"),
                              state_root=runtime_state_root(store_root(root)))
    except LaminaError:
        return None


def version(root: str | None = None, runtime: str | None = None) -> dict:
    """GET /version's facts: lamina's version, Python's, the platform, the runtime (or None)."""
    import platform

    return {"Version": VERSION, "PythonVersion": platform.python_version(), "Os": "linux",
            "Arch": platform.machine(), "Runtime": runtime_without_store(root, runtime)}


def check(system, *, rehash: bool = True) -> tuple[list[str], list[str]]:
    """Verify every blob, image, layer and container record: (problems, notes)."""
    from lamina.check import check_store

    return check_store(system, rehash=rehash)


def prune(system) -> tuple[list[str], int]:
    """Recover interrupted work, then remove blobs and layers no image uses:
    (the chain IDs of the deleted layers, bytes reclaimed from the content store)."""
    from lamina.gc import sweep
    from lamina.recovery import recover

    recover(system)
    before = sum(system.content.size(d) for d in system.content.walk())
    removed = sweep(system)
    after = sum(system.content.size(d) for d in system.content.walk())
    return removed, before - after


def disk_usage(system) -> dict:
    """GET /system/df's document, and `system df`'s figures: the images (how many
    containers use each, and the bytes of their layers another image shares), the
    containers with their writable layers' sizes, the volumes with their use, and no
    build cache (a build's steps are images here, counted among them)."""
    from lamina import oci
    from lamina.digest import Digest, chain_ids
    from lamina.engine.summaries import container_summaries, image_summaries
    from lamina.engine.volumes import usage

    images = image_summaries(system, all_images=True)
    records = system.containers.list()
    used: dict[str, int] = {}
    for rec in records:
        used[rec.image_id] = used.get(rec.image_id, 0) + 1
    chains_of: dict[str, list[str]] = {}
    holders: dict[str, int] = {}
    for item in images:
        try:
            chains = [str(c) for c in chain_ids(oci.diff_ids(system.images.config(Digest(item["Id"]))))]
        except Exception:  # a damaged image: `system check` reports it; its layers count as its own
            chains = []
        chains_of[item["Id"]] = chains
        for chain in set(chains):
            holders[chain] = holders.get(chain, 0) + 1
    sizes = {str(layer.chain_id): layer.size or 0 for layer in system.layers.all()}
    shared = {c for c, n in holders.items() if n > 1}
    for item in images:
        item["Containers"] = used.get(item["Id"], 0)
        item["SharedSize"] = sum(sizes.get(c, 0) for c in set(chains_of[item["Id"]]) & shared)
    # each image's own layers once, and the shared ones once (a layer of a pulled image
    # need not be unpacked: an image's Size counts it all the same)
    layers_size = sum(i["Size"] - i["SharedSize"] for i in images) + sum(sizes.get(c, 0) for c in shared)
    containers = container_summaries(system, records, size=True)
    volumes = usage(system)  # the containers' Mounts list their volumes (df's LOCAL VOLUMES counts them)
    return {"LayersSize": layers_size, "Images": images, "Containers": containers,
            "Volumes": volumes, "BuildCache": [], "BuilderSize": 0}
