"""Layer views: `image diff A B` and `layers IMAGE` (engine/layerviews.py).

`image` is docker's management command; only `diff` lives under it here (the other
`image` verbs are docker's top-level ones: images, rmi, history...).
"""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    p = sub.add_parser("image", help="Manage images")
    isub = p.add_subparsers(dest="image_command", metavar="COMMAND")
    p.set_defaults(func=lambda system, args, p=p: (sys.stdout.write(p.help_text()), 0)[1], needs_system=False)

    d = isub.add_parser("diff", help="Show the changes between two images, layers or a container and an image")
    d.add_argument("--stat", action="store_true", help="Show sizes and mode/owner changes, and a summary")
    d.add_argument("--format", default=None, help="Output format: json")
    d.add_argument("old", metavar="A", help="IMAGE, IMAGE@N (its first N layers), a layer diff ID or a CONTAINER")
    d.add_argument("new", metavar="B")
    d.set_defaults(func=cmd_diff)

    p = sub.add_parser("layers", help="Explore an image's layers: sizes, instructions, files, wasted space")
    p.add_argument("--format", default=None, help="Output format: json")
    p.add_argument("--layer", type=int, default=None, help="Show only layer N's files (1 = the bottom layer)")
    p.add_argument("--all", action="store_true", help="Also list the unchanged files of the merged tree")
    p.add_argument("--depth", type=int, default=None, help="Show paths at most this deep (below --path)")
    p.add_argument("--path", default="", help="Show only what is below this directory")
    p.add_argument("--no-files", action="store_true", help="Show the layer table and figures only")
    p.add_argument("--offset", type=int, default=0, help="JSON: first entry of each layer's page")
    p.add_argument("--limit", type=int, default=1000, help="JSON: entries per layer (0: all)")
    p.add_argument("--ci", action="store_true", help="Check dive's CI rules and exit 1 when one fails")
    p.add_argument("--lowest-efficiency", default="0.9", help='CI: lowest efficiency score, or "disabled"')
    p.add_argument("--highest-wasted-bytes", default="disabled", help='CI: most wasted bytes (e.g. 20MB), or "disabled"')
    p.add_argument("--highest-user-wasted-percent", default="0.1",
                   help='CI: most wasted bytes per byte the non-base layers add, or "disabled"')
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(func=cmd_layers)


def _json(obj) -> str:
    import json
    import math

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None  # JSON has no NaN/Inf (dive's share with no user bytes)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), indent=2)  # ASCII: a non-UTF-8 file name (surrogate escapes) stays printable


def _check_format(value: str | None) -> bool:
    from lamina.errors import UsageError

    if value in (None, "", "table"):
        return False
    if value == "json":
        return True
    raise UsageError(f'unsupported --format "{value}": use json')


def cmd_diff(system, args) -> int:
    from lamina.engine.layerviews import diff
    from lamina.quoting import escape_controls
    from lamina.units import human_size

    as_json = _check_format(args.format)
    result = diff(system, args.old, args.new)
    out = sys.stdout
    if as_json:
        out.write(_json(result) + "\n")
        return 0
    if not args.stat:
        out.write("".join(f"{c['kind']} {escape_controls(c['path'])}\n" for c in result["changes"]))
        return 0
    for c in result["changes"]:
        notes = []
        if c["kind"] == "C":
            if c["old_type"] != c["type"]:
                notes.append(f"{c['old_type']} -> {c['type']}")
            if c["old_size"] != c["size"]:
                notes.append(f"{human_size(c['old_size'], 3)} -> {human_size(c['size'], 3)}")
            if c["old_mode"] != c["mode"]:
                notes.append(f"mode {c['old_mode']} -> {c['mode']}")
            if (c["old_uid"], c["old_gid"]) != (c["uid"], c["gid"]):
                notes.append(f"owner {c['old_uid']}:{c['old_gid']} -> {c['uid']}:{c['gid']}")
        elif c["type"] != "dir" or c["kind"] == "D":
            notes.append(("+" if c["kind"] == "A" else "-") + human_size(c["size"], 3))
        out.write(f"{c['kind']} {escape_controls(c['path'])}" + (f"  ({', '.join(notes)})" if notes else "") + "\n")
    s = result["summary"]
    net = s["net_bytes"]
    out.write(f"{s['added']} added (+{human_size(s['added_bytes'], 3)}), {s['changed']} changed, "
              f"{s['deleted']} deleted (-{human_size(s['deleted_bytes'], 3)}); net "
              f"{'+' if net >= 0 else '-'}{human_size(abs(net), 3)}; {result['shared_layers']} shared layers\n")
    return 0


def cmd_layers(system, args) -> int:
    from lamina.engine.layerviews import ci_rules, explore, layer_entries

    as_json = _check_format(args.format)
    rules = None
    if args.ci:  # thresholds are checked before the image is read
        rules = ci_rules({"efficiency": 1.0, "wasted_bytes": 0, "user_wasted_share": 0.0},
                         lowest_efficiency=args.lowest_efficiency, highest_wasted_bytes=args.highest_wasted_bytes,
                         highest_user_wasted_percent=args.highest_user_wasted_percent)
    report, ex = explore(system, args.image, keep_trees=args.all)
    if args.ci:
        rules = ci_rules(report, lowest_efficiency=args.lowest_efficiency,
                         highest_wasted_bytes=args.highest_wasted_bytes,
                         highest_user_wasted_percent=args.highest_user_wasted_percent)
        report["ci"] = rules
    which = [args.layer] if args.layer is not None else list(range(1, len(report["layers"]) + 1))
    if args.layer is not None:
        layer_entries(ex, args.layer)  # a layer the image does not have: one error line
    out = sys.stdout
    if as_json:
        if not args.no_files:
            limit = None if args.limit == 0 else args.limit
            for n in which:
                page = layer_entries(ex, n, all=args.all, depth=args.depth, offset=args.offset, limit=limit,
                                     under=args.path)
                report["layers"][n - 1]["files"] = page
        out.write(_json(report) + "\n")
    else:
        _print_report(report, ex, which, args, out)
    if rules is not None and any(r["status"] == "FAIL" for r in rules):
        failed = [r for r in rules if r["status"] == "FAIL"]
        sys.stderr.write(f"Error: CI failed: {failed[0]['rule']}: {failed[0]['message']}\n")
        return 1
    return 0


def _print_report(report: dict, ex, which: list[int], args, out) -> None:
    from lamina.cli import fmt
    from lamina.cli.treeview import file_tree
    from lamina.engine.layerviews import layer_entries
    from lamina.quoting import escape_controls
    from lamina.units import human_size

    rows = [[str(r["index"]), r["diff_id"][7:19], human_size(r["size"], 3),
             f"+{r['added']} ~{r['changed']} -{r['deleted']} ={r['unchanged']}", fmt.ellipsis(r["created_by"].replace("\n", " "), 60)]
            for r in report["layers"]]
    fmt.table(["LAYER", "DIFF ID", "SIZE", "FILES", "CREATED BY"], rows, out=out)
    out.write(f"\nImage efficiency score: {report['efficiency'] * 100:.0f} %\n")
    out.write(f"Potential wasted space: {human_size(report['wasted_bytes'], 3)}\n")
    share = report["user_wasted_share"]
    out.write(f"Wasted share of user bytes: {'n/a' if share != share or share == float('inf') else f'{share * 100:.1f} %'}\n")
    if report["inefficient"]:
        out.write("\nCount  Wasted Space  File Path\n")
        for f in report["inefficient"][:20]:
            out.write(f"{f['count']:>5}  {human_size(f['wasted'], 3):>12}  {escape_controls(f['path'])}\n")
    if not args.no_files:
        for n in which:
            r = report["layers"][n - 1]
            out.write(f"\nLayer {n}  {human_size(r['size'], 3)}  {escape_controls(r['created_by'])}\n")
            file_tree(layer_entries(ex, n, all=args.all, depth=args.depth, under=args.path)["entries"], out)
    if "ci" in report:
        out.write("\nResults:\n")
        for rule in report["ci"]:
            msg = f": {rule['message']}" if rule["message"] and rule["status"] != "SKIP" else ""
            out.write(f"  {rule['status']}: {rule['rule']}{msg}\n")
        failed = sum(r["status"] == "FAIL" for r in report["ci"])
        out.write(f"Result:{'FAIL' if failed else 'PASS'} [Total:{len(report['ci'])}] "
                  f"[Passed:{sum(r['status'] == 'PASS' for r in report['ci'])}] [Failed:{failed}] "
                  f"[Skipped:{sum(r['status'] == 'SKIP' for r in report['ci'])}]\n")


def print_stack(system, name: str) -> int:
    """`history --tree`: the image as boxes, newest layer on top, metadata steps inside the box
    of the layer they follow."""
    from lamina.cli.treeview import stack as draw
    from lamina.engine.layerviews import stack

    data = stack(system, name)
    rows = []
    layers = data["layers"]
    for i, layer in enumerate(layers):
        after = layers[i + 1]["empty_before"] if i + 1 < len(layers) else data["empty_after"]
        rows.append({"label": f"#{layer['index']} {layer['diff_id'][7:19]}  {layer['created_by'].replace(chr(10), ' ')}",
                     "size": layer["size"], "steps": [s.replace("\n", " ") for s in reversed(after)]})
    draw(f"{name} ({data['id'][7:19]})", list(reversed(rows)), sys.stdout)
    return 0
