"""`lamina system check`: is every record backed by intact files?

Problems (exit 1): an image whose config/manifest/layer blob is missing or does
not hash to its name, a complete layer without its directory, a tag pointing
nowhere.  Notes (fine): unreferenced blobs or layers, which `system prune`
removes, and leftovers of killed processes, which the next command removes.
"""

from __future__ import annotations

import os

from lamina import oci
from lamina.digest import Digest, chain_ids
from lamina.errors import LaminaError


def check_store(system, *, rehash: bool = True) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    notes: list[str] = []
    blobs = set(str(d) for d in system.content.walk())
    for name in os.listdir(system.content.blob_dir):
        try:
            Digest.from_hex(name)
        except LaminaError:
            problems.append(f"stray file in blob store: {name}")
    if rehash:
        for d in sorted(blobs):
            if not system.content.verify(Digest(d)):
                problems.append(f"blob {d} does not hash to its name")
    used: set[str] = set()
    layers = {str(l.chain_id): l for l in system.layers.all()}
    for rec in system.images.list():
        what = f"image {rec.id.short}"
        for d in (rec.id, rec.manifest):
            used.add(str(d))
            if str(d) not in blobs:
                problems.append(f"{what}: blob {d} is missing")
        try:
            config = system.images.config(rec.id)
            manifest = system.images.manifest(rec)
        except LaminaError as e:
            problems.append(f"{what}: {e}")
            continue
        ids = oci.diff_ids(config)
        descs = manifest.get("layers", [])
        if len(ids) != len(descs):
            problems.append(f"{what}: {len(descs)} layers in manifest, {len(ids)} diff_ids in config")
        for desc in descs:
            used.add(desc["digest"])
            if desc["digest"] not in blobs:
                problems.append(f"{what}: layer blob {desc['digest']} is missing")
        for diff_id in ids:
            used.update(str(b.digest) for b in system.images.blob_for_diff_id(diff_id))
        for chain in chain_ids(ids):
            layer = layers.get(str(chain))
            if layer is not None and not os.path.isdir(layer.dir):
                problems.append(f"{what}: layer {chain} has no directory")
    for image_id in system.db.execute("SELECT DISTINCT image_id FROM tags"):
        if not system.images.exists(Digest(image_id[0])):
            problems.append(f"tag points to missing image {image_id[0]}")
    for rec in system.containers.list():
        if not os.path.isdir(system.containers.path(rec.id)):
            problems.append(f"container {rec.short_id}: directory is missing")
        if not system.images.exists(Digest(rec.image_id)):
            problems.append(f"container {rec.short_id}: image {rec.image_id[:19]} is missing")
    used.update(r[0] for r in system.db.execute("SELECT digest FROM image_indexes"))  # multi-platform tags
    unreferenced = blobs - used
    if unreferenced:
        notes.append(f"{len(unreferenced)} unreferenced blob(s) (`lamina system prune` removes them)")
    busy = system.leases.live(system.db)
    if busy:
        notes.append(f"{len(busy)} command(s) in progress keep what they make from sweeps: " + ", ".join(busy))
    incomplete = system.db.execute("SELECT COUNT(*) FROM layers WHERE complete=0").fetchone()[0]
    if incomplete:
        notes.append(f"{incomplete} layer(s) being unpacked right now")
    from lamina.network.endpoint import leaks
    from lamina.volumemounts import check as check_volumes

    net_problems, net_notes = leaks(system)
    vol_problems, vol_notes = check_volumes(system)
    return problems + net_problems + vol_problems, notes + net_notes + vol_notes
