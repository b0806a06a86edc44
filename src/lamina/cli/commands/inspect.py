"""`inspect`: low-level information on containers or images.

Its own module, as `ps`: `inspect IMAGE` is start-up bound (docker's CLI answers in
~15 ms), so it loads neither the container verbs' module nor, for an image, any
container or image-store code (engine/imageinspect.py reads the row and the config).
"""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    p = sub.add_parser("inspect", help="Return low-level information on containers or images")
    p.add_argument("-f", "--format", default=None, help="Format the output using the given Go template")
    p.add_argument("--type", choices=("container", "image"), default=None, help="Return JSON for specified type")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.set_defaults(func=cmd_inspect)


def _image_only(name: str) -> bool:
    """A name that only an image can have: a tag (`:`), a digest (`@`) or a repository
    path (`/` past a container name's optional leading one)."""
    return ":" in name or "@" in name or "/" in name[1:]


def cmd_inspect(system, args) -> int:
    from lamina.cli.main import report
    from lamina.errors import LaminaError, NotFound

    items, code = [], 0
    for name in args.names:
        try:
            item = None
            # `inspect bb:1`: no container is ever named so (store.containers.validate_name), so
            # an image's inspect neither asks the container store nor imports it
            if args.type == "container" or (args.type is None and not _image_only(name)):
                try:
                    rec = system.containers.resolve(name)
                    # each engine module once its kind is found: `inspect IMAGE` needs no container code
                    from lamina.engine.containers import inspect_container, size_of

                    item = inspect_container(system, rec)
                    if args.size:  # as GET /containers/{id}/json?size=1
                        item["SizeRw"], item["SizeRootFs"] = size_of(system, rec)
                except NotFound:
                    if args.type == "container":
                        raise
            if item is None:
                from lamina.engine.imageinspect import inspect_image

                item = inspect_image(system, name)
            items.append(item)
        except NotFound:
            report(f"No such {'object' if args.type is None else args.type}: {name}")
            code = 1
        except LaminaError as e:
            report(e)
            code = 1
    if args.format:
        from lamina.cli.fmt import print_inspected

        return print_inspected(items, args.format, code)
    from lamina.leanjson import go_json  # fmt.print_inspect's JSON, without fmt's imports

    sys.stdout.write(go_json(items, indent=4) + "\n")
    return code
