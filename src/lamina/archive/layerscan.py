"""A layer explorer over unpacked layers (dive's view): what each layer adds,
changes and deletes, and the space a later layer wastes.

`scan(dir)` lists one overlay-form layer dir (whiteouts are 0:0 char devices,
opaque dirs carry the xattr) in sorted pre-order.  `explore(dirs)` stacks the
layers bottom-up twice:

* as overlayfs merges them (`fs`), to mark each entry of a layer A (not below),
  C (below, and different by docker diff's stat rule), U (below and the same: a
  parent directory copied up) or D (a whiteout);
* as dive stacks its per-layer trees (`dive`: opaque markers ignored, a whiteout
  removes the path), for dive's efficiency figures (filetree/efficiency.go and
  image/analysis.go, matched on purpose, quirks included): every *leaf* of a layer
  (a non-directory, an empty directory, a whiteout) counts its size against its
  path; a whiteout counts 0 for a file and the size of the whole directory it
  removes (as stacked below) for a directory; a path seen twice or more is an
  inefficiency whose cumulative size is wasted; the score is
  sum(smallest size per path) / sum(cumulative size per path).  Sizes are tar
  header sizes: regular files only, a second name of a hard link counts 0.
"""

from __future__ import annotations

import os
import stat

from lamina.archive import whiteout as wh
from lamina.archive.stackdiff import TYPES as _KIND

# entry: (path, kind, size, mode, uid, gid, mtime_ns, leaf, opaque)
#   kind: one of stackdiff.TYPES' values or "whiteout"


def scan(root: str) -> list[tuple]:
    """Every entry of one layer dir, sorted pre-order (a directory before its content)."""
    out: list[tuple] = []
    links: set = set()

    def walk(path: str, rel: str) -> None:
        with os.scandir(path) as it:
            items = sorted(((e.name, e.stat(follow_symlinks=False)) for e in it), key=lambda x: x[0])
        for name, st in items:
            child = f"{rel}/{name}"
            fmt = stat.S_IFMT(st.st_mode)
            if fmt == stat.S_IFCHR and st.st_rdev == 0:
                out.append((child, "whiteout", 0, 0, 0, 0, 0, True, False))
                continue
            size = 0
            if fmt == stat.S_IFREG:
                size = st.st_size
                if st.st_nlink > 1:  # a tar holds a second name of a file as a link of size 0
                    if st.st_ino in links:
                        size = 0
                    links.add(st.st_ino)
            if fmt == stat.S_IFDIR:
                full = f"{path}/{name}"
                mark = len(out)
                out.append(None)
                walk(full, child)
                leaf = len(out) == mark + 1
                out[mark] = (child, "dir", 0, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, leaf,
                             wh.is_opaque(full))
                continue
            out.append((child, _KIND.get(fmt, "other"), size, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                        True, False))

    walk(root, "")
    return out


class _Tree:
    """A tree of path components: node = [value, children dict], with an index by path so
    that a layer's pre-order entries cost one dict lookup each (a 100k-file layer is linear)."""

    def __init__(self) -> None:
        self.root: list = [None, {}]
        self._index: dict[str, list] = {"": self.root}

    def get(self, path: str):
        return self._index.get(path)

    def put(self, path: str, value, *, clear: bool = False) -> None:
        node = self._index.get(path)
        if node is None:
            parent_path, _, name = path.rpartition("/")
            parent = self._index.get(parent_path)
            if parent is None:  # a parent no layer listed (not in overlay form): make it
                self.put(parent_path, None)
                parent = self._index[parent_path]
            node = parent[1][name] = [None, {}]
            self._index[path] = node
        node[0] = value
        if clear and node[1]:
            self._forget(path, node)
            node[1] = {}

    def remove(self, path: str) -> bool:
        node = self._index.pop(path, None)
        if node is None:
            return False
        parent_path, _, name = path.rpartition("/")
        self._index[parent_path][1].pop(name, None)
        self._forget(path, node)
        return True

    def _forget(self, path: str, node) -> None:
        """Drop the index entries below `node` (a removed or replaced directory)."""
        stack = [(path, node)]
        while stack:
            prefix, n = stack.pop()
            for name, child in n[1].items():
                sub = f"{prefix}/{name}"
                self._index.pop(sub, None)
                stack.append((sub, child))


def _subtree_size(node) -> int:
    """dive's sizer over a node and everything below it (values are (size, is_dir))."""
    total = 0
    stack = [node]
    while stack:
        n = stack.pop()
        total += n[0][0] if n[0] is not None else 0
        stack.extend(n[1].values())
    return total


def _differs(old: tuple, new: tuple) -> bool:
    """docker diff's stat rule on (kind, size, mode, uid, gid, mtime_ns)."""
    if old[2:5] != new[2:5]:
        return True
    if old[0] == "dir":
        return False
    return old[1] != new[1] or old[5] // 1_000_000_000 != new[5] // 1_000_000_000


class Exploration:
    """The result of `explore`: per layer its size, counts and marked entries; dive's figures."""

    def __init__(self) -> None:
        self.layers: list[dict] = []          # size, added, changed, deleted, unchanged, files
        self.marks: list[list[tuple]] = []    # per layer: (path, mark, kind, size, mode, uid, gid)
        self.trees: list = []                 # per layer: the merged fs tree after it (lazily for --all)
        self.efficiency = 1.0
        self.wasted = 0
        self.user_size = 0
        self.size = 0
        self.inefficient: list[dict] = []     # path, count, wasted; largest first


def explore(dirs: list[str], *, keep_trees: bool = False) -> Exploration:
    """Explore layers given bottom first."""
    result = Exploration()
    fs = _Tree()
    dive = _Tree()
    eff: dict[str, list] = {}   # path -> [cumulative, minimum, count]
    for index, d in enumerate(dirs):
        entries = scan(d)
        counts = {"A": 0, "C": 0, "D": 0, "U": 0}
        marks = []
        layer_size = 0
        # dive: leaves against the tree of the layers below (whiteouts sized there)
        for path, kind, size, *_rest in entries:
            layer_size += size
            leaf = _rest[4]
            if not leaf:
                continue
            if kind == "whiteout":  # 0 for a file; a directory: all it held, as stacked below
                node = dive.get(path)
                size = _subtree_size(node) if node is not None and node[0] is not None and node[0][1] else 0
            rec = eff.get(path)
            if rec is None:
                eff[path] = [size, size, 1]
            else:
                rec[0] += size
                rec[1] = min(rec[1], size)
                rec[2] += 1
        # dive's Stack: whiteouts remove, everything else is added (opaque ignored)
        for path, kind, size, *_rest in entries:
            if kind == "whiteout":
                dive.remove(path)
            else:
                dive.put(path, (size, kind == "dir"))
        # overlayfs: marks against the merged tree below, then merge this layer
        present = {e[0] for e in entries}
        for path, kind, size, mode, uid, gid, mtime, leaf, opaque in entries:
            new = (kind, size, mode, uid, gid, mtime) if kind != "whiteout" else None
            below = fs.get(path)
            old = below[0] if below is not None else None
            hidden = []
            if opaque and below is not None:  # what it held below is gone (docker diff: D, top paths only)
                hidden = [(f"{path}/{name}", "D", c[0][0], c[0][1], 0, c[0][3], c[0][4])
                          for name, c in sorted(below[1].items())
                          if c[0] is not None and f"{path}/{name}" not in present]
            if new is None:
                mark = "D"
                shown = old if old is not None else ("whiteout", 0, 0, 0, 0, 0)
                marks.append((path, "D", shown[0], shown[1], 0, shown[3], shown[4]))
                fs.remove(path)
            else:
                mark = "A" if old is None else ("C" if _differs(old, new) else "U")
                marks.append((path, mark, kind, size, stat.S_IMODE(mode), uid, gid))
                marks.extend(hidden)
                counts["D"] += len(hidden)
                # a non-directory or an opaque directory hides what was below it
                fs.put(path, new, clear=opaque or kind != "dir" or (old is not None and old[0] != "dir"))
            counts[mark] += 1
        result.marks.append(marks)
        if keep_trees:
            result.trees.append(_snapshot(fs))
        result.layers.append({"size": layer_size, "added": counts["A"], "changed": counts["C"],
                              "deleted": counts["D"], "unchanged": counts["U"], "entries": len(entries)})
    minimum = sum(v[1] for v in eff.values())
    discovered = sum(v[0] for v in eff.values())
    result.efficiency = 1.0 if discovered == 0 else minimum / discovered
    bad = sorted(((p, v) for p, v in eff.items() if v[2] >= 2), key=lambda x: x[1][0], reverse=True)
    result.inefficient = [{"path": p, "count": v[2], "wasted": v[0]} for p, v in bad]
    result.wasted = sum(v[0] for _, v in bad)
    sizes = [layer["size"] for layer in result.layers]
    result.size = sum(sizes)
    result.user_size = sum(sizes[1:])
    return result


def _snapshot(tree: _Tree) -> dict:
    """path -> (kind, size, mode bits...) of a merged tree (for the --all listing)."""
    out = {}
    stack = [("", tree.root)]
    while stack:
        prefix, node = stack.pop()
        for name, child in node[1].items():
            path = f"{prefix}/{name}"
            out[path] = child[0]
            stack.append((path, child))
    return out


def user_wasted_share(wasted: int, user_size: int) -> float:
    """dive's WastedUserPercent: wasted / user bytes (Go's float division: 0/0 is NaN, x/0 is +Inf)."""
    if user_size == 0:
        return float("nan") if wasted == 0 else float("inf")
    return wasted / user_size
