"""Text pictures of layers with box-drawing characters: a file tree from sorted
pre-order paths (`layers`), the shared-layer forest (`images --tree`) and one
image's stack (`history --tree`).  Linear in what is drawn: a 100k-file layer is
one pass over its sorted entries.  Image-supplied text (paths, commands) is
escaped for the terminal here (quoting.escape_controls), as fmt.table does.
"""

from __future__ import annotations

from lamina.quoting import escape_controls
from lamina.units import human_size

MID, LAST, PIPE, GAP = "├── ", "└── ", "│   ", "    "


def _size(n: int) -> str:
    return human_size(n, 3)


def file_tree(entries: list[dict], out) -> None:
    """Entries (path, mark, type, size, mode, uid, gid) in pre-order, as an indented tree;
    a directory's children follow it.  Which child is last needs the next sibling, so
    each line is written when its successor at the same depth is known."""
    rows = [(e["path"].count("/"), e) for e in entries]
    n = len(rows)
    # last[i]: no later row at the same depth before a shallower one (one backward pass)
    last = [True] * n
    seen_depth: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        depth = rows[i][0]
        nxt = seen_depth.get(depth)
        last[i] = nxt is None
        # rows deeper than this one belong to another parent once we go above them
        for d in [d for d in seen_depth if d > depth]:
            del seen_depth[d]
        seen_depth[depth] = i
    prefix: list[str] = []
    base = min((d for d, _ in rows), default=1)
    for i, (depth, e) in enumerate(rows):
        level = depth - base
        del prefix[level:]
        branch = LAST if last[i] else MID
        name = e["path"].rsplit("/", 1)[1] or "/"
        extra = "" if e["type"] in ("dir", "whiteout") else f"  {_size(e['size'])}"
        owner = f"{e['uid']}:{e['gid']}"
        out.write(f"{e['mark']} {e['mode']} {owner:>9} {''.join(prefix)}{branch}{escape_controls(name)}"
                  f"{'/' if e['type'] == 'dir' else ''}{extra}\n")
        prefix.append(GAP if last[i] else PIPE)


def forest(roots: list[dict], out) -> None:
    """Nodes {"diff_id", "size", "images": [names], "children": [...]} drawn once each."""
    def draw(node: dict, prefix: str, is_last: bool, top: bool) -> None:
        branch = "" if top else (LAST if is_last else MID)
        label = f"{node['diff_id'][7:19]} {_size(node['size'])}"
        out.write(f"{prefix}{branch}{label}\n")
        inner = prefix + ("" if top else (GAP if is_last else PIPE))
        kids = [("image", name) for name in node["images"]] + [("layer", c) for c in node["children"]]
        for j, (kind, item) in enumerate(kids):
            end = j == len(kids) - 1
            if kind == "image":
                out.write(f"{inner}{LAST if end else MID}● {escape_controls(item)}\n")
            else:
                draw(item, inner, end, False)

    for i, root in enumerate(roots):
        if i:
            out.write("\n")
        draw(root, "", True, True)


def stack(title: str, rows: list[dict], out, width: int = 72) -> None:
    """One image as a stack of boxes, newest on top: {"label", "size", "steps": [...]}; rows
    without a layer (metadata steps) are drawn as thin lines inside the box above them."""
    inner = width - 4

    def line(text: str) -> str:
        text = escape_controls(text)
        if len(text) > inner:
            text = text[:inner - 3] + "..."
        return f"│ {text:<{inner}} │\n"

    out.write("┌" + "─" * (width - 2) + "┐\n")
    out.write(line(title))
    for row in rows:
        out.write("├" + "─" * (width - 2) + "┤\n")
        head = f"{row['label']}"
        size = _size(row["size"]) if row.get("size") is not None else ""
        pad = inner - len(size) - 1
        shown = escape_controls(head)
        shown = shown if len(shown) <= pad else shown[:pad - 3] + "..."
        out.write(f"│ {shown:<{pad}} {size} │\n")
        for step in row.get("steps", ()):
            out.write(line("  · " + step))
    out.write("└" + "─" * (width - 2) + "┘\n")
