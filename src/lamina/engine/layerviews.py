"""Views of the layers: `image diff`, the layer explorer (`layers`), the shared-layer
forest (`images --tree`) and one image's stack (`history --tree`).

Every function takes a `System` and names, reads the stored layers (never
mounts), and returns plain records (dicts and lists of str/int/float/bool) that a
CLI prints and a web page serialises as they are.

An operand of `diff` is an image (name or ID), a layer (`IMAGE@N`: the image as of
its N-th layer, N=0 being the empty filesystem; `IMAGE@sha256:<diff id>`: the
image up to that layer; a bare diff ID), or a container (its writable layer on
its image, as `docker diff` sees it).
"""

from __future__ import annotations

import os

from lamina.errors import LaminaError, NotFound, UsageError


class Side:
    """One operand: its layer dirs bottom first, the chain ID of each (what two sides
    share is the common prefix), and how it is shown."""

    def __init__(self, label: str, dirs: list[str], chains: list[str], *, full: bool = False) -> None:
        self.label = label
        self.dirs = dirs
        self.chains = chains
        self.full = full  # the top dir is a whole rootfs (copy snapshotter), not an overlay upper


def _image_side(system, record, label: str, count: int | None = None) -> Side:
    from lamina.image import Image

    image = Image.load(system, record.id)
    n = len(image.diff_ids) if count is None else count
    layers = image.layers()[:n] if n else []
    return Side(label, [layer.dir for layer in layers], [str(layer.chain_id) for layer in layers])


def _layer_index(system, record, name: str, spec: str) -> int:
    """N of IMAGE@N, or the position (+1) of IMAGE@<diff id>."""
    from lamina import oci

    diff_ids = [str(d) for d in oci.diff_ids(system.images.config(record.id))]
    if spec.isdigit():
        n = int(spec)
        if n > len(diff_ids):
            raise NotFound(f"image {name} has {len(diff_ids)} layers: no layer {n}")
        return n
    want = spec if spec.startswith("sha256:") else "sha256:" + spec
    matches = [i for i, d in enumerate(diff_ids) if d == want or (len(spec) >= 12 and d.startswith(want))]
    if not matches:
        raise NotFound(f"layer {spec} is not a layer of image {name}")
    return matches[-1] + 1


def _chain_side(system, diff_id: str) -> Side | None:
    """A bare diff ID: the stored layer (and its parents) with that diff ID."""
    row = system.db.execute("SELECT chain_id FROM layers WHERE diff_id=? AND complete=1 LIMIT 1",
                            (diff_id,)).fetchone()
    if row is None:
        return None
    from lamina.digest import Digest

    recs = []
    chain = row[0]
    while chain:
        rec = system.layers.get(Digest(chain))
        if rec is None:
            return None
        recs.append(rec)
        chain = rec.parent
    recs.reverse()
    return Side(f"layer {diff_id[7:19]}", [r.dir for r in recs], [str(r.chain_id) for r in recs])


def resolve(system, operand: str) -> Side:
    """An operand of `image diff` as a Side; NotFound names what was looked for."""
    from lamina.errors import InvalidReference, NoSuchContainer, NoSuchImage

    if not operand:
        raise UsageError("an image, layer or container name must not be empty")
    try:
        return _image_side(system, system.images.resolve(operand), operand)
    except (NoSuchImage, InvalidReference):
        pass
    name, at, spec = operand.rpartition("@")
    if at and name:
        try:
            record = system.images.resolve(name)
        except (NoSuchImage, InvalidReference):
            raise NotFound(f"No such image: {name}") from None
        n = _layer_index(system, record, name, spec)
        return _image_side(system, record, f"{name}@{n}", n)
    if operand.startswith("sha256:") and len(operand) == 71:
        side = _chain_side(system, operand)
        if side is not None:
            return side
    try:
        rec = system.containers.resolve(operand)
    except NoSuchContainer:
        raise NotFound(f"No such image, layer or container: {operand}") from None
    return _container_side(system, rec, operand)


def _container_side(system, rec, label: str) -> Side:
    from lamina.digest import Digest

    image = _image_side(system, system.images.get(Digest(rec.image_id)), label)
    ctr_dir = system.containers.path(rec.id)
    upper = os.path.join(ctr_dir, "upper")
    if os.path.isdir(upper):
        return Side(label, image.dirs + [upper], image.chains + [f"container:{rec.id}"])
    copy = os.path.join(ctr_dir, "rootfs-copy")
    if os.path.isdir(copy):
        return Side(label, [copy], [f"container:{rec.id}"], full=True)
    raise NotFound(f"container {label} has no filesystem (removed while reading?)")


def _stacks(a: Side, b: Side) -> tuple[list, list]:
    shared = 0
    for x, y in zip(a.chains, b.chains):
        if x != y:
            break
        shared += 1
    base = [(d, False) for d in reversed(a.dirs[:shared])]
    return ([(d, True) for d in reversed(a.dirs[shared:])] + base,
            [(d, True) for d in reversed(b.dirs[shared:])] + base)


def diff(system, old: str, new: str) -> dict:
    """The changes that turn `old` into `new`: {"from", "to", "shared_layers", "changes": [...],
    "summary"}; each change is {"kind": A|C|D, "path", "type", "size", "mode", "uid", "gid"} and,
    for C, the old_* values."""
    from lamina.archive.stackdiff import diff_stacks

    a, b = resolve(system, old), resolve(system, new)
    old_stack, new_stack = _stacks(a, b)
    changes = diff_stacks(old_stack, new_stack, old_full=a.full, new_full=b.full)
    shared = sum(1 for d, top in old_stack if not top)
    return {"from": a.label, "to": b.label, "shared_layers": shared, "changes": changes,
            "summary": summarize(changes)}


def summarize(changes: list[dict]) -> dict:
    """Counts and bytes per kind, and the net change in file bytes."""
    out = {"added": 0, "changed": 0, "deleted": 0, "added_bytes": 0, "deleted_bytes": 0, "changed_bytes": 0}
    for c in changes:
        if c["kind"] == "A":
            out["added"] += 1
            out["added_bytes"] += c["size"]
        elif c["kind"] == "D":
            out["deleted"] += 1
            out["deleted_bytes"] += c["size"]
        else:
            out["changed"] += 1
            out["changed_bytes"] += c["size"] - c["old_size"]
    out["net_bytes"] = out["added_bytes"] - out["deleted_bytes"] + out["changed_bytes"]
    return out


# ------------------------------------------------------------------ the layer explorer


def history_per_layer(history: list, count: int) -> list[dict]:
    """The history entry that made each of `count` layers, as dive and docker match them:
    entries marked empty_layer make no layer; a layer without an entry is "(missing)".
    Each gets the empty-layer entries that came just before it (`steps`)."""
    out = []
    pending: list[str] = []
    it = iter(history)
    for _ in range(count):
        made = None
        for h in it:
            if h.get("empty_layer"):
                pending.append(h.get("created_by", ""))
                continue
            made = h
            break
        out.append({"created_by": made.get("created_by", "") if made else "(missing)",
                    "created": made.get("created", "") if made else "", "empty_before": pending})
        pending = []
    return out


def explore(system, name: str, *, keep_trees: bool = False):
    """(report, exploration): the report is {"image", "id", "layers": [...], "efficiency",
    "wasted_bytes", "user_wasted_share", "size", "user_size", "inefficient": [...]};
    the exploration (archive.layerscan.Exploration) holds each layer's marked entries."""
    from lamina.archive.layerscan import explore as run, user_wasted_share
    from lamina.errors import NoSuchImage
    from lamina.image import Image

    try:
        record = system.images.resolve(name)
    except LaminaError:
        raise NoSuchImage(name) from None
    image = Image.load(system, record.id)
    layers = image.layers()
    ex = run([layer.dir for layer in layers], keep_trees=keep_trees)
    made_by = history_per_layer(image.history, len(layers))
    rows = []
    for i, (layer, figures, hist) in enumerate(zip(layers, ex.layers, made_by)):
        rows.append({"index": i + 1, "diff_id": str(layer.diff_id), "chain_id": str(layer.chain_id),
                     **figures, "created_by": hist["created_by"], "created": hist["created"],
                     "empty_before": hist["empty_before"]})
    share = user_wasted_share(ex.wasted, ex.user_size)
    report = {"image": name, "id": str(record.id), "layers": rows, "efficiency": ex.efficiency,
              "wasted_bytes": ex.wasted, "user_wasted_share": share, "size": ex.size,
              "user_size": ex.user_size, "inefficient": ex.inefficient}
    return report, ex


def layer_entries(ex, index: int, *, all: bool = False, depth: int | None = None, offset: int = 0,
                  limit: int | None = None, under: str = "") -> dict:
    """Entries of layer `index` (1-based) as {"path", "mark" (A/C/D/U), "type", "size", "mode", "uid",
    "gid"}, pre-order; `all` adds the untouched entries of the merged tree (U); `under` keeps what
    is below that directory and `depth` what is at most that many levels below it (a page loads a
    tree one directory at a time: under="/usr", depth=1); `offset`/`limit` page through them."""
    if not 1 <= index <= len(ex.marks):
        raise NotFound(f"no layer {index}: the image has {len(ex.marks)} layers")
    marks = ex.marks[index - 1]
    rows = marks
    if all:
        merged = ex.trees[index - 1]
        touched = {m[0] for m in marks}
        extra = [(p, "U", v[0], v[1], v[2] & 0o7777, v[3], v[4]) for p, v in merged.items() if p not in touched]
        rows = sorted(marks + extra, key=lambda r: r[0].split("/"))
    under = under.rstrip("/")
    if under:
        rows = [r for r in rows if r[0].startswith(under + "/")]
    if depth is not None:
        top = under.count("/") + depth
        rows = [r for r in rows if r[0].count("/") <= top]
    total = len(rows)
    page = rows[offset:offset + limit if limit is not None else None]
    entries = [{"path": p, "mark": m, "type": k, "size": s, "mode": f"{mode:04o}", "uid": u, "gid": g}
               for p, m, k, s, mode, u, g in page]
    nxt = offset + len(page)
    return {"layer": index, "total": total, "offset": offset, "entries": entries,
            "next_offset": nxt if nxt < total else None}


# ------------------------------------------------------------------ dive's CI rules


def ci_rules(report: dict, *, lowest_efficiency: str = "0.9", highest_wasted_bytes: str = "disabled",
             highest_user_wasted_percent: str = "0.1") -> list[dict]:
    """dive's three CI rules (runtime/ci/rules.go) with its defaults: [{"rule", "status"
    (PASS/FAIL/SKIP), "message"}].  A value that does not parse is a UsageError."""
    out = []

    def rule(key: str, value: str, check) -> None:
        if value == "disabled":
            out.append({"rule": key, "status": "SKIP", "message": "rule disabled"})
            return
        failed = check(value)
        out.append({"rule": key, "status": "FAIL" if failed else "PASS", "message": failed or ""})

    def efficiency(value: str):
        limit = _float(value, "--lowest-efficiency")
        if limit > report["efficiency"]:
            return f"image efficiency is too low (efficiency={report['efficiency']:.4f} < threshold={limit})"
        return None

    def wasted(value: str):
        limit = _bytes(value)
        if report["wasted_bytes"] > limit:
            return f"too many bytes wasted (wasted-bytes={report['wasted_bytes']} > threshold={limit})"
        return None

    def share(value: str):
        limit = _float(value, "--highest-user-wasted-percent")
        got = report["user_wasted_share"]
        if limit < got:  # NaN (no user bytes, none wasted) passes, as in Go
            return ("too many bytes wasted, relative to the user bytes added "
                    f"(%-user-wasted-bytes={got:.4f} > threshold={limit})")
        return None

    rule("lowestEfficiency", lowest_efficiency, efficiency)
    rule("highestWastedBytes", highest_wasted_bytes, wasted)
    rule("highestUserWastedPercent", highest_user_wasted_percent, share)
    return out


def _float(value: str, flag: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise UsageError(f'invalid argument "{value}" for "{flag}" flag: not a number or "disabled"') from None


def _bytes(value: str) -> int:
    """go-humanize's ParseBytes: `20MB` (SI), `20MiB` (IEC), `1024`."""
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*", value)
    if m is None:
        raise UsageError(f'invalid argument "{value}" for "--highest-wasted-bytes" flag: not a size')
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * ((1024 if m.group(3) else 1000) ** power))


# ------------------------------------------------------------------ text pictures' data


def forest(system, *, all: bool = False) -> list[dict]:
    """The shared-layer forest: one node per chain ID {"diff_id", "chain_id", "size", "images": [names],
    "children": [...]}, each image under its top layer (`images` rows: intermediate images only with
    `all`); a layer that several images share appears once."""
    from lamina import oci
    from lamina.digest import chain_ids
    from lamina.engine.images import list_images

    sizes = {str(r.chain_id): r.size for r in system.layers.all()}
    names: dict[str, list[str]] = {}
    for repo, tag, _, rec in list_images(system, all=all):
        names.setdefault(str(rec.id), []).append(f"{repo}:{tag} ({rec.id.short})" if repo != "<none>"
                                                 else f"<none> ({rec.id.short})")
    roots: dict[str, dict] = {}
    nodes: dict[str, dict] = {}
    for image_id, labels in names.items():
        from lamina.digest import Digest

        diff_ids = oci.diff_ids(system.images.config(Digest(image_id)))
        level, node = roots, None
        for diff_id, chain in zip(diff_ids, chain_ids(diff_ids)):
            key = str(chain)
            node = nodes.get(key)
            if node is None:
                node = nodes[key] = {"diff_id": str(diff_id), "chain_id": key, "size": sizes.get(key, 0),
                                     "images": [], "children": {}}
                level[key] = node
            level = node["children"]
        if node is None:  # an image without layers (FROM scratch + metadata)
            node = roots.setdefault("scratch", {"diff_id": "sha256:" + "-" * 12 + " (no layers)", "chain_id": "",
                                                "size": 0, "images": [], "children": {}})
        node["images"].extend(sorted(labels))

    def plain(level: dict) -> list[dict]:
        return [{**n, "children": plain(n["children"])} for n in level.values()]

    return plain(roots)


def stack(system, name: str) -> dict:
    """One image as its stack: {"image", "id", "layers": [{"index", "diff_id", "size", "created_by",
    "empty_before": [...]}] bottom first} (history matched to layers as docker's history does)."""
    from lamina.errors import NoSuchImage
    from lamina.image import Image

    try:
        record = system.images.resolve(name)
    except LaminaError:
        raise NoSuchImage(name) from None
    image = Image.load(system, record.id)
    sizes = {str(r.chain_id): r.size for r in system.layers.all()}
    made_by = history_per_layer(image.history, len(image.diff_ids))
    layers = [{"index": i + 1, "diff_id": str(d), "size": sizes.get(str(c), 0), **h}
              for i, (d, c, h) in enumerate(zip(image.diff_ids, image.chain_ids, made_by))]
    tail = [h.get("created_by", "") for h in image.history[_consumed(image.history, len(layers)):]]
    return {"image": name, "id": str(record.id), "layers": layers, "empty_after": tail}


def _consumed(history: list, count: int) -> int:
    """How many history entries the first `count` layers' entries (and the empty ones between) take."""
    seen = 0
    for i, h in enumerate(history):
        if seen == count:
            return i
        if not h.get("empty_layer"):
            seen += 1
    return len(history)
