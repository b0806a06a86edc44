"""Image verbs: import, images, tag, rmi, history."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    from lamina.errors import DAEMON_PREFIX  # loaded by the store anyway

    p = sub.add_parser("import", help="Import the contents from a tarball to create a filesystem image",
                       max_args=None)  # docker checks only the minimum (more: the extra are ignored)
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", default=None, help="Set platform if server is multi-platform capable")
    p.add_argument("file", metavar="file|URL|-")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_import, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("images", help="List images")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("--format", default=None, help="Pretty-print images using a Go template")
    p.add_argument("--tree", action="store_true", help="Draw the images as a forest of shared layers")
    p.set_defaults(func=cmd_images)

    p = sub.add_parser("tag", help="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    p.set_defaults(func=cmd_tag, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("rmi", help="Remove one or more images")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_rmi)

    p = sub.add_parser("history", help="Show the history of an image")
    p.add_argument("-H", "--human", action="store_true", default=True,
                   help="Print sizes and dates in human readable format")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--format", default=None, help="Pretty-print images using a Go template")
    p.add_argument("--tree", action="store_true", help="Draw the image as a stack of layers")
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(func=cmd_history, error_prefix=DAEMON_PREFIX)


def cmd_import(system, args) -> int:
    from lamina.archive.tarformat import MalformedTar
    from lamina.engine import images as engine
    from lamina.errors import InvalidArchive, UsageError

    engine.tag_references(args.repository)  # validated before any work
    if args.platform:
        from lamina.transfer.platforms import parse_platform

        parse_platform(args.platform)
    if args.file.startswith(("http://", "https://")):
        raise UsageError("importing from a URL is not supported; download the tarball first")
    if args.file == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(args.file, "rb")
        except OSError as e:
            raise UsageError(f"open {args.file}: {e.strerror.lower() if e.strerror else e}") from None  # docker's CLI
    # the docker CLI streams files too, so docker records "Imported from -"
    with stream:
        try:
            image_id = engine.import_image(system, stream, repository=args.repository, message=args.message,
                                           changes=args.change, source="-", platform=args.platform)
        except MalformedTar as e:
            # dockerd untars in a helper process and reports its exit and Go's words for the fault
            raise InvalidArchive(f"Error processing tar file(exit status 1): {e.go_error}") from None
    print(image_id)
    return 0


def cmd_images(system, args) -> int:
    from lamina.cli import fmt
    from lamina.engine.imagelist import image_rows  # the rows alone: not engine/images.py nor the image store
    from lamina.errors import InvalidReference

    if args.tree:  # the picture: engine/layerviews.py draws nothing, cli/treeview.py draws it
        from lamina.cli.treeview import forest
        from lamina.engine.layerviews import forest as layer_forest

        forest(layer_forest(system, all=args.all), sys.stdout)
        return 0
    try:
        rows = image_rows(system, repository=args.repository, all=args.all, digests=args.digests)
    except InvalidReference:
        rows = []  # dockerd matches the argument as a pattern: a name no image can have lists nothing
    if args.quiet and not fmt.wants_template(args.format):  # docker: a --format wins over -q here
        # one line per row, so an ID twice for two tags, as docker's (in one write)
        sys.stdout.write("".join(f"{row[3] if args.no_trunc else row[3][7:19]}\n" for row in rows))
        return 0
    if fmt.wants_template(args.format):
        from lamina.cli.formatctx import IMAGE_HEADERS, image_context
        from lamina.units import human_size

        items = []
        for repo, tag, digest, image_id, created, size in rows:
            items.append(image_context({
                "Containers": "N/A", "CreatedAt": fmt.go_time(created), "CreatedSince": fmt.since(created),
                "Digest": digest, "ID": image_id if args.no_trunc else image_id[7:19], "Repository": repo,
                "SharedSize": "N/A", "Size": fmt.human_size(size), "Tag": tag, "UniqueSize": "N/A",
                "VirtualSize": human_size(size),  # docker: units.HumanSize, 4 digits (`1.982MB`)
            }))
        return fmt.print_listing(args.format, items, IMAGE_HEADERS)
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    table = []
    for repo, tag, digest, image_id, created, size in rows:
        table.append([repo, tag] + ([digest] if args.digests else []) +
                     [image_id if args.no_trunc else image_id[7:19], fmt.since(created), fmt.human_size(size)])
    fmt.table(headers, table)
    return 0


def cmd_tag(system, args) -> int:
    from lamina.engine.images import tag

    tag(system, args.source, args.target)
    return 0


def cmd_rmi(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine.images import remove
    from lamina.errors import DAEMON_PREFIX, LaminaError, NoSuchImage

    failed = False
    for name in args.images:
        try:
            for line in remove(system, name, force=args.force, prune=not args.no_prune):
                print(line)
        except LaminaError as e:
            report(e, "Error" if isinstance(e, NoSuchImage) else DAEMON_PREFIX)  # docker's client words a 404
            # docker's CLI: with -f only a missing image is forgiven (exit 0)
            failed = failed or not (args.force and isinstance(e, NoSuchImage))
    return 1 if failed else 0


def cmd_history(system, args) -> int:
    from lamina.cli import fmt
    from lamina.engine.images import history

    if args.tree:
        from lamina.cli.commands.layers import print_stack

        return print_stack(system, args.image)
    rows = history(system, args.image)
    if args.quiet and not fmt.wants_template(args.format):  # docker: a --format wins over -q here
        for ident, *_ in rows:
            print(ident if args.no_trunc or ident == "<missing>" else ident[7:19])
        return 0
    if fmt.wants_template(args.format):
        from lamina.cli.formatctx import HISTORY_HEADERS, history_context

        items = [history_context({"ID": ident if args.no_trunc or ident == "<missing>" else ident[7:19],
                                  "CreatedSince": fmt.since(created), "CreatedAt": fmt.go_time(created),
                                  "CreatedBy": by if args.no_trunc else fmt.ellipsis(by, 45),
                                  "Size": fmt.human_size(size), "Comment": comment})
                 for ident, created, by, size, comment in rows]
        return fmt.print_listing(args.format, items, HISTORY_HEADERS)
    table = []
    for ident, created, by, size, comment in rows:
        shown = ident if args.no_trunc or ident == "<missing>" else ident[7:19]
        by = by if args.no_trunc else fmt.ellipsis(by.replace("\n", " "), 45)
        table.append([shown, fmt.since(created), by, fmt.human_size(size), comment])
    fmt.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], table)
    return 0
