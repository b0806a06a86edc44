"""Image verbs: import, images, tag, rmi, history."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    p = sub.add_parser("import", help="Import the contents from a tarball to create a filesystem image")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", default=None, help="Set platform if server is multi-platform capable")
    p.add_argument("file", metavar="file|URL|-")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("images", help="List images")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("--format", default=None, help="Pretty-print images using a Go template")
    p.set_defaults(func=cmd_images)

    p = sub.add_parser("tag", help="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("rmi", help="Remove one or more images")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_rmi)

    p = sub.add_parser("history", help="Show the history of an image")
    p.add_argument("-H", "--human", action="store_true", default=True)
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--format", default=None)
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(func=cmd_history)


def _tag_refs(text: str | None) -> tuple:
    from lamina.reference import parse

    return (parse(text),) if text else ()


def cmd_import(system, args) -> int:
    from lamina.errors import LaminaError, UsageError
    from lamina.imageops import import_tarball

    tags = _tag_refs(args.repository)  # validated before any work
    if args.file.startswith(("http://", "https://")):
        raise UsageError("importing from a URL is not supported; download the tarball first")
    if args.file == "-":
        stream, source = sys.stdin.buffer, "-"
    else:
        try:
            stream = open(args.file, "rb")
        except OSError as e:
            raise LaminaError(f"open {args.file}: {e.strerror.lower() if e.strerror else e}") from None
        source = "-"  # the docker CLI streams files too, so docker records "Imported from -"
    with stream:
        image_id = import_tarball(system, stream, source=source, message=args.message,
                                  changes=args.change, tags=tags)
    print(image_id)
    return 0


def _image_rows(system, args):
    """(repository, tag, digest, record) rows as `docker images` lists them."""
    from lamina.reference import parse

    tags = system.images.all_tags()
    want = None
    if args.repository:
        want = parse(args.repository, default_tag=False)
    rows = []
    for rec in system.images.list():
        names = tags.get(str(rec.id), [])
        digests = system.images.digests_of(rec.id) if args.digests or want else []
        if not names:
            if want is not None or (not args.all and system.images.children(rec.id)):
                continue  # untagged parents of tagged images are "intermediate"
            rows.append(("<none>", "<none>", digests[0].split("@", 1)[1] if digests else "<none>", rec))
            continue
        for name in names:
            ref = parse(name)
            if want is not None and (ref.repository != want.repository or (want.tag and ref.tag != want.tag)):
                continue
            digest = next((d.split("@", 1)[1] for d in digests if d.startswith(ref.repository + "@")), "<none>")
            rows.append((ref.familiar_repository, ref.tag, digest, rec))
    return rows


def cmd_images(system, args) -> int:
    from lamina.cli import fmt

    rows = _image_rows(system, args)
    if args.quiet:
        seen = []
        for *_, rec in rows:
            ident = str(rec.id) if args.no_trunc else rec.id.short
            if ident not in seen:
                seen.append(ident)
        for ident in seen:
            print(ident)
        return 0
    if args.format:
        template = args.format
        is_table = template.startswith("table")
        for repo, tag, digest, rec in rows:
            item = {
                "Containers": "N/A", "CreatedAt": fmt.go_time(rec.created), "CreatedSince": fmt.since(rec.created),
                "Digest": digest, "ID": str(rec.id) if args.no_trunc else rec.id.short, "Repository": repo,
                "SharedSize": "N/A", "Size": fmt.human_size(rec.size), "Tag": tag, "UniqueSize": "N/A",
                "VirtualSize": fmt.human_size(rec.size),
            }
            print(fmt.render_template(template[5:].lstrip() if is_table else template, item))
        return 0
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    table = []
    for repo, tag, digest, rec in rows:
        ident = str(rec.id) if args.no_trunc else rec.id.short
        table.append([repo, tag] + ([digest] if args.digests else []) +
                     [ident, fmt.since(rec.created), fmt.human_size(rec.size)])
    fmt.table(headers, table)
    return 0


def cmd_tag(system, args) -> int:
    from lamina.reference import parse

    target = parse(args.target)
    record = system.images.resolve(args.source)
    system.images.tag(record.id, target)
    return 0


def cmd_rmi(system, args) -> int:
    from lamina.errors import LaminaError
    from lamina.gc import remove_image

    failed = False
    for name in args.images:
        try:
            for line in remove_image(system, name, force=args.force, prune=not args.no_prune):
                print(line)
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            failed = True
    return 1 if failed else 0


def cmd_history(system, args) -> int:
    from lamina import oci
    from lamina.cli import fmt

    record = system.images.resolve(args.image)
    config = system.images.config(record.id)
    history = list(config.get("history") or [])
    sizes = _layer_sizes(system, record)
    ids = _history_ids(system, record, history)
    rows = []
    layer_index = sum(1 for h in history if not h.get("empty_layer"))
    for h, ident in zip(reversed(history), reversed(ids)):
        if h.get("empty_layer"):
            size = 0
        else:
            layer_index -= 1
            size = sizes[layer_index] if 0 <= layer_index < len(sizes) else 0
        created = oci.parse_time(h.get("created", ""))
        by = h.get("created_by", "").replace("\t", " ")  # as docker's CreatedBy()
        rows.append((ident, created, by, size, h.get("comment", "")))
    if args.quiet:
        for ident, *_ in rows:
            print(ident if args.no_trunc or ident == "<missing>" else ident[7:19])
        return 0
    if args.format:
        for ident, created, by, size, comment in rows:
            item = {"ID": ident if args.no_trunc or ident == "<missing>" else ident[7:19],
                    "CreatedSince": fmt.since(created), "CreatedAt": fmt.go_time(created),
                    "CreatedBy": by, "Size": fmt.human_size(size), "Comment": comment}
            print(fmt.render_template(args.format, item))
        return 0
    table = []
    for ident, created, by, size, comment in rows:
        shown = ident if args.no_trunc or ident == "<missing>" else ident[7:19]
        by = by if args.no_trunc else fmt.ellipsis(by.replace("\n", " "), 45)
        table.append([shown, fmt.since(created), by, fmt.human_size(size), comment])
    fmt.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], table)
    return 0


def _layer_sizes(system, record) -> list[int]:
    from lamina import oci
    from lamina.digest import chain_ids

    out = []
    diff_ids = oci.diff_ids(system.images.config(record.id))
    for diff_id, chain in zip(diff_ids, chain_ids(diff_ids)):
        layer = system.layers.get(chain)
        if layer is not None:
            out.append(layer.size)
        else:
            blobs = system.images.blob_for_diff_id(diff_id)
            out.append(blobs[0].size if blobs else 0)
    return out


def _history_ids(system, record, history: list) -> list[str]:
    """Image ID per history entry: this image for the last entry, local parents
    (commit/build) for theirs, `<missing>` otherwise — as docker shows."""
    from lamina.digest import Digest

    ids = ["<missing>"] * len(history)
    rec, index = record, len(history) - 1
    while rec is not None and 0 <= index < len(ids):
        ids[index] = str(rec.id)
        if not (rec.parent and system.images.exists(Digest(rec.parent))):
            break
        rec = system.images.get(Digest(rec.parent))
        index = len(system.images.config(rec.id).get("history") or []) - 1
    return ids
