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
    p.add_argument("--rm", default="true", help="Remove intermediate containers after a successful build (always)")
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers (always)")
    p.add_argument("path", metavar="PATH | URL | -")
    # No System up front: a fully cached rebuild (a build-memo hit) needs only the
    # database, and skipping the store's imports is a third of its run time.
    p.set_defaults(func=cmd_build, error_prefix="", needs_system=False)


DEFAULT_ROOT = "/var/lib/lamina"  # lamina.system.DEFAULT_ROOT (not imported: see add_parsers)


def cmd_build(_system, args) -> int:
    from lamina.errors import LaminaError

    system = None
    try:
        try:
            replayed, fp = _replay(args)
        except LaminaError:
            raise
        except Exception:  # the memo is only a shortcut: any trouble there means "build"
            replayed, fp = None, None
        if replayed is not None:
            return replayed
        from lamina.system import System

        system = System(args.root, storage_driver=args.storage_driver, runtime=args.runtime)
        return _build(system, args, fp)
    except LaminaError as e:
        sys.stdout.flush()
        msg = str(e)
        sys.stderr.write(msg + "\n" if msg.startswith(("The command", "Error")) else f"Error: {msg}\n")
        sys.stderr.flush()
        return e.exit_code
    finally:
        if system is not None:
            system.close()


def _replay(args) -> tuple[int | None, str | None]:
    """A build-memo hit, handled with only the store's database: (exit code, None);
    else (None, the context fingerprint if it was computed)."""
    if args.no_cache or args.pull or args.path == "-" or args.file == "-":
        return None, None
    root = os.path.abspath(args.root or os.environ.get("LAMINA_ROOT") or DEFAULT_ROOT)
    db_path = os.path.join(root, "lamina.db")
    if not os.path.isfile(db_path) or not os.path.isdir(args.path):
        return None, None
    from lamina.builder import memo
    from lamina.store.db import connect

    path = _dockerfile_path(args)
    data = _read_dockerfile(os.path.abspath(args.path), path)
    if data is None:
        return None, None  # the full path reports it
    key = memo.request_key(**_request(args, _decode(data, path), os.path.basename(path), path))
    fp = memo.fingerprint(os.path.abspath(args.path))
    db = connect(db_path)
    try:
        hit = memo.lookup(db, key, fp)
        if hit is None:
            return None, fp
        known = memo.tag_names(hit, args.tag)
        if known is None:  # a -t this memo has not seen: parse (and check) it
            from lamina.reference import parse

            refs = tuple(parse(t) for t in args.tag)
            if any(r.digest and not r.tag for r in refs):
                return None, fp  # the full path reports it
            known = [(r.name, r.familiar) for r in refs]
        names = [n for n, _ in known]
        return _finish(lambda image_id: memo.tag(db, image_id, names), args, [f for _, f in known],
                       hit["final"], hit.get("sending"), hit["log"]), None
    finally:
        db.close()


def _request(args, text: str, name: str, dockerfile_path: str | None) -> dict:
    """What the memo key covers (everything but the context, fingerprinted apart)."""
    context_dir = os.path.abspath(args.path) if args.path != "-" else ""
    found = _ignore_file(context_dir, dockerfile_path) if context_dir else None
    ignore_text = found[1].decode("utf-8", "replace") if found else None
    return dict(dockerfile=text, name=name, build_args=_build_args(args.build_arg), target=args.target,
                labels=dict(_kv(item) for item in args.label), network=_network(args),
                secrets=dict(_secret(item) for item in args.secret), ignore_text=ignore_text)


def _network(args) -> str:
    return "default" if args.network == "bridge" else args.network


def _build(system, args, fp: str | None = None) -> int:
    import shutil

    from lamina.errors import UsageError
    from lamina.reference import parse

    if args.network not in ("default", "host", "none", "bridge"):
        raise UsageError(f"network {args.network} not found")  # docker build: exit 1
    tags = tuple(parse(t) for t in args.tag)
    build_args = _build_args(args.build_arg)
    labels = dict(_kv(item) for item in args.label)
    secrets = dict(_secret(item) for item in args.secret)
    cleanup = None
    try:
        context_dir, text, name, cleanup = _context(system, args)
        network = _network(args)
        dockerfile_path = None if args.path == "-" else _dockerfile_path(args)
        memo_key = None
        if not args.no_cache and not args.pull and args.path != "-" and args.file != "-":
            from lamina.builder import memo

            memo_key = memo.request_key(**_request(args, text, name, dockerfile_path))
            fp = fp or memo.fingerprint(context_dir)
        from lamina.builder.log import BuildLog
        from lamina.builder.state import BuildRequest

        ignore = _ignore(context_dir, dockerfile_path)
        log = BuildLog(sys.stdout, quiet=args.quiet)
        if args.path != "-" or cleanup is not None:
            log.context_size(_context_size(context_dir, ignore))
        request = BuildRequest(
            context_dir=context_dir, dockerfile=text, dockerfile_name=name, tags=tags, build_args=build_args,
            target=args.target, no_cache=args.no_cache, quiet=args.quiet, labels=labels,
            network=network, pull=args.pull, secrets=secrets, ignore=ignore)
        from lamina.builder.executor import Builder

        builder = Builder(system, request, log)
        result = builder.build()
        # The memo is recorded only if the context did not change while it was read: a
        # fingerprint from before the build must describe what the build copied.
        if memo_key is not None and builder.memoizable and memo.fingerprint(context_dir) == fp:
            memo.record(system.db, memo_key, fp, final=str(result.image_id), images=builder.images,
                        lookups=builder.lookups, transcript=log.transcript, sending=log.sending,
                        names={t: (r.name, r.familiar) for t, r in zip(args.tag, tags)})
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)

    def tag(image_id: str) -> None:
        from lamina.digest import Digest

        for ref in tags:
            system.images.tag(Digest(image_id), ref)

    return _finish(tag, args, [r.familiar for r in tags], str(result.image_id), None, None)


def _finish(tag, args, familiar: list[str], image_id: str, sending: str | None, replay: list[str] | None) -> int:
    """Tag, write --iidfile, print the end of the log (and, for a memo hit, all of it)."""
    out = sys.stdout
    if replay is not None and not args.quiet:
        out.write("".join(line + "\n" for line in ([sending] if sending else []) + replay))
    tag(image_id)
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(image_id)
    if args.quiet:
        out.write(f"{image_id}\n")
    else:
        out.write(f"Successfully built {image_id[7:19]}\n")
        for name in familiar:
            out.write(f"Successfully tagged {name}\n")
    out.flush()
    return 0


_MAX_DOCKERFILE = 16 << 20


def _ignore_file(context_dir: str, dockerfile_path: str | None) -> tuple[str, bytes] | None:
    """(path, content) of the .dockerignore that applies: `<Dockerfile>.dockerignore`
    wins over `<context>/.dockerignore` (dockerignore.find_ignore_file's rule).  Both are
    read inside the context like the Dockerfile; one that is a link leading out of the
    context is an error, not "no ignore file" (that would send what it excludes)."""
    from lamina.builder.context import read_in_context
    from lamina.errors import BuildError

    candidates = [os.path.join(context_dir, ".dockerignore")]
    if dockerfile_path and dockerfile_path != "-":
        candidates.insert(0, dockerfile_path + ".dockerignore")
    for path in candidates:
        if not os.path.lexists(path):
            continue
        data = read_in_context(context_dir, path, _MAX_DOCKERFILE)
        if data is not None:
            return path, data
        if os.path.islink(path):
            raise BuildError(f"{os.path.basename(path)}: a symlink that leads out of the build context is not read")
    return None


def _read_dockerfile(context_dir: str, path: str) -> bytes | None:
    """The Dockerfile's bytes, resolved inside the context (see read_in_context)."""
    from lamina.builder.context import read_in_context

    return read_in_context(context_dir, path, _MAX_DOCKERFILE)


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
        from lamina.builder.context import context_from_stream

        work, text = context_from_stream(sys.stdin.buffer, system.tmp_dir)
        if text is None:
            name = args.file or "Dockerfile"
            data = _read_dockerfile(work, os.path.join(work, name))
            if data is None:
                raise UsageError(f"Cannot locate specified Dockerfile: {name}")
            text = _decode(data, name)
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
    # docker's daemon resolves the Dockerfile inside the context: a link to a host
    # file is not found (and never read, so no line of it can reach a message).
    data = _read_dockerfile(os.path.abspath(args.path), path)
    if data is None:
        raise UsageError(f"Cannot locate specified Dockerfile: {os.path.basename(path)}")
    return os.path.abspath(args.path), _decode(data, path), os.path.basename(path), None


def _decode(data: bytes, path: str) -> str:
    from lamina.errors import BuildError

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BuildError(f"{os.path.basename(path)}: not valid UTF-8") from None


def _ignore(context_dir: str, dockerfile_path: str | None):
    from lamina.builder.dockerignore import IgnoreMatcher, read_ignore_file

    found = _ignore_file(context_dir, dockerfile_path)
    if found is None:
        return None
    path, data = found
    patterns = read_ignore_file(data.decode("utf-8", "surrogateescape"), os.path.basename(path))
    return IgnoreMatcher(patterns, os.path.basename(path)) if patterns else None


def _context_size(root: str, ignore) -> int:
    """Size of the tar docker would have sent: a 512-byte header per entry, file data
    padded to 512, two zero blocks at the end."""
    from lamina.builder.context import BuildContext

    total = 1024
    ctx = BuildContext(root, ignore)
    try:
        for rel, st in ctx.walk(""):
            if not rel:
                continue
            total += 512
            if st.st_mode & 0o170000 == 0o100000:
                total += -(-st.st_size // 512) * 512
    finally:
        ctx.close()
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


def _kv(item: str) -> tuple[str, str]:
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
