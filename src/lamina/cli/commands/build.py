"""`lamina build`: docker's classic build command line and log.

Context: a directory (read in place, never tarred), or `-` for a tar (any
compression) or a bare Dockerfile on stdin.  The `Sending build context` line is
printed like the classic builder's, with the size of what the build may read
(the context minus .dockerignore'd files).
"""

from __future__ import annotations

import os
import sys


def add_parsers(sub) -> None:
    p = sub.add_parser("build", help="Build an image from a Dockerfile")
    p.add_argument("-t", "--tag", action="append", default=[], help="Name and optionally a tag in the 'name:tag' format")
    p.add_argument("-f", "--file", default=None, help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
    p.add_argument("--build-arg", action="append", default=[], help="Set build-time variables")
    p.add_argument("--target", default=None, help="Set the target build stage to build.")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID on success")
    p.add_argument("--label", action="append", default=[], help="Set metadata for an image")
    p.add_argument("--network", default="default",
                   help="Networking mode for the RUN instructions (default (the bridge)|host|none)")
    p.add_argument("--iidfile", default=None, help="Write the image ID to the file")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("--progress", default="auto", choices=("auto", "plain", "tty"), help="Type of progress output")
    p.add_argument("--secret", action="append", default=[], help="Secret to expose to the build: id=mysecret[,src=/local/secret|env=VAR]")
    p.add_argument("--platform", default=None, help="Set platform (only the host's is supported)")
    p.add_argument("--rm", action="store_true", default=True,
                   help="Remove intermediate containers after a successful build (always)")
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers (always)")
    p.add_argument("path", metavar="PATH | URL | -")
    # No System up front: a fully cached rebuild (a build-memo hit) needs only the
    # database, and skipping the store's imports is a third of its run time.
    p.set_defaults(func=cmd_build, error_verbatim=("The command", "Error"), needs_system=False)


def cmd_build(_system, args) -> int:
    from lamina.engine import build as engine

    options = engine.BuildOptions(
        path=args.path, dockerfile=args.file, tags=tuple(args.tag), build_args=_build_args(args.build_arg),
        target=args.target, no_cache=args.no_cache, pull=args.pull, quiet=args.quiet,
        labels=dict(_kv(item) for item in args.label), network=args.network, secrets=tuple(args.secret))
    outcome, fp = engine.probe(options, args.root)
    if outcome is None:
        from lamina.system import System

        system = System(args.root, storage_driver=args.storage_driver, runtime=args.runtime)
        try:
            outcome = engine.build(system, options, out=sys.stdout, stdin=sys.stdin.buffer, fingerprint=fp)
        finally:
            system.close()
    out = sys.stdout
    if outcome.replay is not None and not args.quiet:
        out.write("".join(line + "\n" for line in outcome.replay))
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(outcome.image_id)
    if args.quiet:
        out.write(f"{outcome.image_id}\n")
    else:
        out.write(f"Successfully built {outcome.image_id[7:19]}\n")
        for name in outcome.tags:
            out.write(f"Successfully tagged {name}\n")
    out.flush()
    return 0


def _build_args(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:  # `--build-arg NAME` takes the value from our environment, if set
            if key in os.environ:
                out[key] = os.environ[key]
            continue
        out[key] = value
    return out


def _kv(item: str) -> tuple[str, str]:
    key, _, value = item.partition("=")
    return key, value
