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
    p.add_argument("--network", default="default", help="Networking mode for the RUN instructions (host|none)")
    p.add_argument("--iidfile", default=None, help="Write the image ID to the file")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("--progress", default="auto", choices=("auto", "plain", "tty"), help="Type of progress output")
    p.add_argument("--secret", action="append", default=[], help="Secret to expose to the build: id=mysecret[,src=/local/secret|env=VAR]")
    p.add_argument("--platform", default=None, help="Set platform (only the host's is supported)")
    p.add_argument("--rm", default="true", help="Remove intermediate containers after a successful build (always)")
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers (always)")
    p.add_argument("path", metavar="PATH | URL | -")
    p.set_defaults(func=cmd_build, error_prefix="")


def cmd_build(system, args) -> int:
    from lamina.errors import LaminaError

    try:
        return _build(system, args)
    except LaminaError as e:
        sys.stdout.flush()
        msg = str(e)
        sys.stderr.write(msg + "\n" if msg.startswith(("The command", "Error")) else f"Error: {msg}\n")
        sys.stderr.flush()
        return e.exit_code


def _build(system, args) -> int:
    import shutil

    from lamina.errors import UsageError
    from lamina.reference import parse

    if args.network not in ("default", "host", "none", "bridge"):
        raise UsageError(f"network mode {args.network!r} not supported (use host or none)")
    tags = tuple(parse(t) for t in args.tag)
    build_args = _build_args(args.build_arg)
    labels = dict(_kv(item, "--label") for item in args.label)
    secrets = dict(_secret(item) for item in args.secret)
    cleanup = None
    try:
        context_dir, text, name, cleanup = _context(system, args)
        network = "host" if args.network in ("default", "bridge") else args.network
        dockerfile_path = None if args.path == "-" else _dockerfile_path(args)
        memo_key = fp = None
        if not args.no_cache and not args.pull:
            from lamina.build import memo

            ignore_path = _ignore_path(context_dir, dockerfile_path)
            ignore_text = open(ignore_path, "rb").read().decode("utf-8", "replace") if ignore_path else None
            memo_key = memo.request_key(dockerfile=text, name=name, build_args=build_args, target=args.target,
                                        labels=labels, network=network, secrets=secrets, ignore_text=ignore_text)
            fp = memo.fingerprint(context_dir)
            hit = memo.lookup(system, memo_key, fp)
            if hit is not None:
                return _finish(system, args, tags, hit["final"], hit.get("sending"), hit["log"])
        from lamina.build.log import BuildLog
        from lamina.build.state import BuildRequest

        ignore = _ignore(context_dir, dockerfile_path)
        log = BuildLog(sys.stdout, quiet=args.quiet)
        if args.path != "-" or cleanup is not None:
            log.context_size(_context_size(context_dir, ignore))
        request = BuildRequest(
            context_dir=context_dir, dockerfile=text, dockerfile_name=name, tags=tags, build_args=build_args,
            target=args.target, no_cache=args.no_cache, quiet=args.quiet, labels=labels,
            network=network, pull=args.pull, secrets=secrets, ignore=ignore)
        from lamina.build.executor import Builder

        builder = Builder(system, request, log)
        result = builder.build()
        if memo_key is not None and builder.memoizable:
            memo.record(system, memo_key, fp, final=str(result.image_id), images=builder.images,
                        lookups=builder.lookups, transcript=log.transcript, sending=log.sending)
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
    return _finish(system, args, tags, str(result.image_id), None, None)


def _finish(system, args, tags, image_id: str, sending: str | None, replay: list[str] | None) -> int:
    """Tag, write --iidfile, print the end of the log (and, for a memo hit, all of it)."""
    from lamina.digest import Digest

    image = Digest(image_id)
    out = sys.stdout
    if replay is not None and not args.quiet:
        out.write("".join(line + "\n" for line in ([sending] if sending else []) + replay))
    for ref in tags:
        system.images.tag(image, ref)
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(image_id)
    if args.quiet:
        out.write(f"{image_id}\n")
    else:
        out.write(f"Successfully built {image.short}\n")
        for ref in tags:
            out.write(f"Successfully tagged {ref.familiar}\n")
    out.flush()
    return 0


def _ignore_path(context_dir: str, dockerfile_path: str | None) -> str | None:
    """Which .dockerignore applies (dockerignore.find_ignore_file, without importing it)."""
    if dockerfile_path and dockerfile_path != "-" and os.path.isfile(dockerfile_path + ".dockerignore"):
        return dockerfile_path + ".dockerignore"
    default = os.path.join(context_dir, ".dockerignore")
    return default if os.path.isfile(default) else None


def _dockerfile_path(args) -> str:
    if args.file in (None, ""):
        for name in ("Dockerfile", "dockerfile"):
            path = os.path.join(args.path, name)
            if os.path.exists(path):
                return path
        return os.path.join(args.path, "Dockerfile")
    if args.file == "-":
        return "-"
    return args.file if os.path.isabs(args.file) or os.path.exists(args.file) else os.path.join(args.path, args.file)


def _context(system, args):
    """(context dir, Dockerfile text, its name for messages, temp dir to remove or None)."""
    from lamina.errors import UsageError

    if args.path == "-":
        from lamina.build.context import context_from_stream

        work, text = context_from_stream(sys.stdin.buffer, system.tmp_dir)
        if text is None:
            name = args.file or "Dockerfile"
            path = os.path.join(work, name)
            if not os.path.isfile(path) or os.path.islink(path):
                raise UsageError(f"Cannot locate specified Dockerfile: {name}")
            text = _read_text(path)
        else:
            name = "Dockerfile"
        return work, text, os.path.basename(name), work
    if args.path.startswith(("http://", "https://", "git@", "git://")):
        raise UsageError("remote build contexts (URLs, git) are not supported yet")
    if not os.path.isdir(args.path):
        raise UsageError(f'unable to prepare context: path "{args.path}" not found')
    path = _dockerfile_path(args)
    if path == "-":
        return os.path.abspath(args.path), sys.stdin.read(), "Dockerfile", None
    if not os.path.isfile(path):
        raise UsageError(f"Cannot locate specified Dockerfile: {os.path.basename(path)}")
    return os.path.abspath(args.path), _read_text(path), os.path.basename(path), None


def _read_text(path: str) -> str:
    from lamina.errors import BuildError

    with open(path, "rb") as f:
        data = f.read(16 << 20)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BuildError(f"{os.path.basename(path)}: not valid UTF-8") from None


def _ignore(context_dir: str, dockerfile_path: str | None):
    from lamina.build.dockerignore import IgnoreMatcher, find_ignore_file, read_ignore_file

    path = find_ignore_file(context_dir, dockerfile_path if dockerfile_path != "-" else None)
    if path is None:
        return None
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        patterns = read_ignore_file(f.read(), os.path.basename(path))
    return IgnoreMatcher(patterns, os.path.basename(path)) if patterns else None


def _context_size(root: str, ignore) -> int:
    """Size of the tar docker would have sent: a 512-byte header per entry, file data
    padded to 512, two zero blocks at the end."""
    from lamina.build.context import BuildContext

    total = 1024
    for rel, st in BuildContext(root, ignore).walk(""):
        if not rel:
            continue
        total += 512
        if st.st_mode & 0o170000 == 0o100000:
            total += -(-st.st_size // 512) * 512
    return total


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


def _kv(item: str, flag: str) -> tuple[str, str]:
    key, _, value = item.partition("=")
    return key, value


def _secret(item: str):
    from lamina.errors import UsageError

    fields = dict(part.partition("=")[::2] for part in item.split(","))
    ident = fields.get("id")
    if not ident:
        raise UsageError(f"--secret {item!r}: id is required")
    if fields.get("env"):
        return ident, ("env", fields["env"])
    src = fields.get("src") or fields.get("source")
    if not src:
        return ident, ("env", ident)
    if not os.path.isfile(src):
        raise UsageError(f"--secret {item!r}: {src} is not a file")
    return ident, os.path.abspath(src)
