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
    p.add_argument("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (host:ip)",
                   validate=_valid_add_host)
    p.add_argument("--network", default="default",
                   help="Networking mode for the RUN instructions (default (the bridge)|host|none)")
    p.add_argument("--allow", action="append", default=[],
                   help='Allow extra privileged entitlement (e.g., "security.insecure" for RUN --security=insecure)')
    p.add_argument("--iidfile", default=None, help="Write the image ID to the file")
    p.add_argument("--explain-cache", action="store_true",
                   help="Print why each step hit or missed the cache (`build explain`: the last build's)")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("--reproducible", action="store_true",
                   help="Make the image reproducible: SOURCE_DATE_EPOCH (from --build-arg or the environment, "
                        "else 0) sets created times and clamps file times")
    p.add_argument("--progress", default="auto", choices=("auto", "plain", "tty"), help="Type of progress output")
    p.add_argument("--secret", action="append", default=[], help="Secret to expose to the build: id=mysecret[,src=/local/secret|env=VAR]")
    p.add_argument("--platform", action="append", default=[],
                   help='Set target platforms for build (e.g. "linux/amd64,linux/arm64": an OCI index)')
    p.add_argument("--rm", action="store_true", default=True,
                   help="Remove intermediate containers after a successful build (always)")
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers (always)")
    p.add_argument("--cache-to", action="append", default=[],
                   help='Cache export destinations (e.g., "type=registry,ref=REPO,mode=max", "type=local,dest=DIR")')
    p.add_argument("--cache-from", action="append", default=[],
                   help='External cache sources (e.g., "type=registry,ref=REPO", "type=local,src=DIR")')
    p.add_argument("--cache-ttl", default=None, help="Ignore shared cache entries older than this (e.g. 24h)")
    p.add_argument("-o", "--output", action="append", default=[],
                   help='Output destination (format: "type=local,dest=path")')
    p.add_argument("--push", action="store_true", help='Shorthand for "--output=type=registry"')
    p.add_argument("path", metavar="PATH | URL | -")
    # No System up front: a fully cached rebuild (a build-memo hit) needs only the
    # database, and skipping the store's imports is a third of its run time.
    p.set_defaults(func=cmd_build, error_verbatim=("The command", "Error"), needs_system=False)


def cmd_build(_system, args) -> int:
    from lamina.engine import build as engine

    if args.path == "explain" and not os.path.exists("explain"):  # `build explain`: no context named so
        from lamina.cli.commands.explain import print_last

        return print_last(args)

    from lamina import sourcedate as reproducible

    # buildx passes its environment's SOURCE_DATE_EPOCH on as a build-arg
    build_args = reproducible.apply(_build_args(args.build_arg), os.environ, args.reproducible)
    options = engine.BuildOptions(
        path=args.path, dockerfile=args.file, tags=tuple(args.tag), build_args=build_args,
        target=args.target, no_cache=args.no_cache, pull=args.pull, quiet=args.quiet,
        labels=dict(_kv(item) for item in args.label), network=args.network, secrets=tuple(args.secret),
        allow=tuple(args.allow), platforms=_platforms(args.platform), extra_hosts=tuple(args.add_host),
        **_shared_options(args))
    # the memo answers a cached rebuild without looking at its steps: not when they are explained
    outcome, fp = engine.probe(options, args.root) if not args.explain_cache else (None, None)
    if outcome is None:
        from lamina.system import System

        system = System(args.root, storage_driver=args.storage_driver, runtime=args.runtime)
        try:
            outcome = engine.build(system, options, out=sys.stdout, stdin=sys.stdin.buffer, fingerprint=fp)
        except BaseException:
            if args.explain_cache:  # the steps up to the failure, then the error
                from lamina.cli.commands.explain import print_last

                print_last(args)
            raise
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
    if args.explain_cache:
        from lamina.cli.commands.explain import print_last

        print_last(args)
    return 0


def _valid_add_host(value: str) -> str | None:
    from lamina.network.options import valid_add_host  # only when the flag is given

    return valid_add_host(value)


def _shared_options(args) -> dict:
    """--cache-*, --output and --push as BuildOptions fields (their modules load only when used)."""
    out = {}
    if args.cache_to or args.cache_from or args.cache_ttl:
        from lamina.builder.remotecache import parse_specs, parse_ttl

        out.update(cache_to=parse_specs(args.cache_to, export=True),
                   cache_from=parse_specs(args.cache_from, export=False), cache_ttl=parse_ttl(args.cache_ttl))
    if args.output or args.push:
        from lamina.engine.outputs import parse_outputs

        out["outputs"] = parse_outputs(args.output, push=args.push)
    return out


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


def _platforms(values) -> tuple:
    if not values:
        return ()
    from lamina.engine.platformbuild import parse_platforms

    return parse_platforms(values)
