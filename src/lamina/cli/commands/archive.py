"""Archive verbs: save, load."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    from lamina.errors import DAEMON_PREFIX

    p = sub.add_parser("save", help="Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_save, error_verbatim=("Error",), error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("load", help="Load an image from a tar archive or STDIN")
    p.add_argument("-i", "--input", default=None, help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    p.set_defaults(func=cmd_load, error_verbatim=("Error",), error_prefix=DAEMON_PREFIX)


def cmd_save(system, args) -> int:
    from lamina.cli.outfile import OutputPathError, check_output_path, output_file
    from lamina.engine.images import save
    from lamina.errors import UsageError

    if args.output is None:
        if sys.stdout.isatty():
            raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        save(system, args.images, sys.stdout.fileno())
        return 0
    try:
        check_output_path(args.output, "failed to save image")
    except OutputPathError as e:
        from lamina.cli.main import report

        report(e, prefix="")  # docker's exact line, without `Error:`
        return 1
    # a private temp file beside the target, renamed over it: a failed save leaves no half archive
    with output_file(args.output, "failed to save image") as f:
        save(system, args.images, f.fileno())
    return 0


def cmd_load(system, args) -> int:
    from lamina.engine.images import load
    from lamina.errors import UsageError
    from lamina.transfer.progress import for_stream

    if args.input is None:
        if sys.stdin.isatty():
            raise UsageError("requested load from stdin, but stdin is empty")
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(args.input, "rb")
        except OSError as e:
            raise UsageError(f"open {args.input}: {e.strerror.lower() if e.strerror else e}") from None  # docker's CLI
    with stream:
        loaded = load(system, stream, progress=for_stream(sys.stdout, quiet=args.quiet))
    for image in loaded:
        for ref in image.tags:
            if ref in image.replaced:
                print(f"The image {ref.familiar} already exists, renaming the old one with ID "
                      f"{image.replaced[ref]} to empty string")
            print(f"Loaded image: {ref.familiar}")
        if not image.tags:
            print(f"Loaded image ID: {image.image_id}")
    return 0
