"""Building an image from a Dockerfile: the memo probe, the context, the build, the tags.

`probe` answers a fully cached rebuild from the build memo with only the
store's database (no System: its imports are a third of such a run's time);
`build` reads the context and the Dockerfile and runs the classic builder.
Both return a BuildOutcome and have tagged the image; the log goes to the text
stream `out` the caller passes (the CLI's stdout, or engine.events.Events).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MAX_DOCKERFILE = 16 << 20


@dataclass(frozen=True)
class BuildOptions:
    """What `docker build` flags (and POST /build's parameters) ask for."""

    path: str                                   # the context directory, or "-" for stdin
    dockerfile: str | None = None               # -f: a path, "-" for stdin, None for PATH/Dockerfile
    tags: tuple[str, ...] = ()
    build_args: dict = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    quiet: bool = False
    labels: dict = field(default_factory=dict)
    network: str = "default"                    # default|bridge, host, none
    secrets: tuple[str, ...] = ()               # buildx's specs: id=NAME[,src=PATH|,env=VAR]
    allow: tuple[str, ...] = ()                 # buildx's --allow entitlements (security.insecure)
    cache_from: tuple = ()                      # builder.remotecache.CacheSpec values
    cache_to: tuple = ()
    cache_ttl: float | None = None
    outputs: tuple = ()                         # engine.outputs.Output values (--output, --push)
    platforms: tuple = ()                       # transfer.platforms.Platform values (--platform a,b)
    extra_hosts: tuple[str, ...] = ()           # --add-host NAME:IP for RUN's /etc/hosts (not in cache keys)
    cache_images: tuple[str, ...] = ()          # POST /build's cachefrom: local images to take steps from


@dataclass(frozen=True)
class BuildOutcome:
    image_id: str                    # sha256:…
    tags: tuple[str, ...]            # the familiar names it was tagged with
    replay: tuple[str, ...] | None   # a memo hit: the log lines of the build it repeats


def probe(options: BuildOptions, root: str | None = None) -> tuple[BuildOutcome | None, str | None]:
    """A build-memo hit, answered and tagged with only the store's database:
    (outcome, None); else (None, the context fingerprint if it was computed).
    The memo is only a shortcut: any trouble in it other than a user error means "build"."""
    from lamina.errors import LaminaError

    try:
        return _probe(options, root)
    except LaminaError:
        raise
    except Exception:  # noqa: BLE001
        return None, None


def _probe(options: BuildOptions, root: str | None) -> tuple[BuildOutcome | None, str | None]:
    from lamina import store_root

    if options.no_cache or options.pull or options.path == "-" or options.dockerfile == "-" or options.allow:
        return None, None  # (--allow: a memo key does not cover the entitlements; no memo then)
    if options.cache_to or options.outputs or options.platforms or options.cache_images:
        return None, None  # the cache is exported and the outputs written by a build (the memo: one platform)
    db_path = os.path.join(store_root(root), "lamina.db")
    if not os.path.isfile(db_path) or not os.path.isdir(options.path):
        return None, None
    from lamina.builder import memo
    from lamina.store.db import connect

    path = dockerfile_path(options)
    data = _read_dockerfile(os.path.abspath(options.path), path)
    if data is None:
        return None, None  # the full path reports it
    key = memo.request_key(**_request(options, _decode(data, path), os.path.basename(path), path))
    fp = memo.fingerprint(os.path.abspath(options.path))
    db = connect(db_path)
    try:
        hit = memo.lookup(db, key, fp)
        if hit is None:
            return None, fp
        known = memo.tag_names(hit, options.tags)
        if known is None:  # a -t this memo has not seen: parse (and check) it
            from lamina.reference import parse

            refs = tuple(parse(t) for t in options.tags)
            if any(r.digest and not r.tag for r in refs):
                return None, fp  # the full path reports it
            known = [(r.name, r.familiar) for r in refs]
        memo.tag(db, hit["final"], [n for n, _ in known])
        replay = ([hit["sending"]] if hit.get("sending") else []) + list(hit["log"])
        return BuildOutcome(hit["final"], tuple(f for _, f in known), tuple(replay)), None
    finally:
        db.close()


def build(system, options: BuildOptions, *, out, stdin=None, fingerprint: str | None = None) -> BuildOutcome:
    """Build and tag; the classic log is written to `out`.  `stdin` (binary) is read for
    a `-` context (a tar or a bare Dockerfile) or a `-` Dockerfile (text is decoded)."""
    import shutil

    from lamina.errors import UsageError
    from lamina.reference import parse

    if options.network not in ("default", "host", "none", "bridge"):
        raise UsageError(f"network {options.network} not found")  # docker build: exit 1
    for entitlement in options.allow:
        if entitlement not in ("security.insecure", "network.host"):
            raise UsageError(f"unknown entitlement {entitlement}")  # buildkit entitlements.Parse
    tags = tuple(parse(t) for t in options.tags)
    _secrets(options)  # checked before any work
    fp = fingerprint
    cleanup = None
    try:
        context_dir, text, name, cleanup = _context(system, options, stdin)
        dockerfile = None if options.path == "-" else dockerfile_path(options)
        memo_key = None
        if not (options.no_cache or options.pull or options.path == "-" or options.dockerfile == "-"
                or options.allow or options.platforms or options.cache_images):
            from lamina.builder import memo

            memo_key = memo.request_key(**_request(options, text, name, dockerfile))
            fp = fp or memo.fingerprint(context_dir)
        from lamina.builder.log import BuildLog
        from lamina.builder.state import BuildRequest

        ignore = _ignore(context_dir, dockerfile)
        log = BuildLog(out, quiet=options.quiet)
        if options.path != "-" or cleanup is not None:
            log.context_size(_context_size(context_dir, ignore))
        request = BuildRequest(
            context_dir=context_dir, dockerfile=text, dockerfile_name=name, tags=tags,
            build_args=dict(options.build_args), target=options.target, no_cache=options.no_cache,
            quiet=options.quiet, labels=dict(options.labels), network=_network(options), pull=options.pull,
            secrets=_secrets(options), ignore=ignore, allow=tuple(options.allow),
            cache_from=options.cache_from, cache_to=options.cache_to, cache_ttl=options.cache_ttl,
            extra_hosts=tuple(options.extra_hosts),
            cache_images=_cache_images(system, options.cache_images) if options.cache_images else None)
        from lamina.builder.executor import Builder

        if options.platforms:  # one build per platform; two or more make an index (engine/platformbuild.py)
            from lamina.engine.platformbuild import build_platforms

            builder, result, index = build_platforms(system, request, log, options.platforms)
        else:
            builder, index = Builder(system, request, log), None
            result = builder.build()
        if builder.env.remote is not None:
            with system.lease("cache export"):  # the compressed blobs it makes
                builder.env.remote.export(result.image_id)  # --cache-to: warnings only
        # The memo is recorded only if the context did not change while it was read: a
        # fingerprint from before the build must describe what the build copied.
        if memo_key is not None and builder.memoizable and memo.fingerprint(context_dir) == fp:
            memo.record(system.db, memo_key, fp, final=str(result.image_id), images=builder.images,
                        lookups=builder.lookups, transcript=log.transcript, sending=log.sending,
                        names={t: (r.name, r.familiar) for t, r in zip(options.tags, tags)})
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
    from lamina.engine.journal import record

    for ref in tags:
        system.images.tag(result.image_id, ref)
        from lamina.transfer.multiplatform import tag_index

        tag_index(system, ref, index)  # the tag stands for the index (its image: the host's member), or not
        record(system, "image", "tag", str(result.image_id), {"name": ref.familiar})
    if options.outputs:
        from lamina.engine.outputs import write_outputs

        write_outputs(system, options.outputs, result.image_id, tags, out=out, quiet=options.quiet)
    return BuildOutcome(str(result.image_id), tuple(r.familiar for r in tags), None)


def _secrets(options: BuildOptions) -> dict:
    """id -> absolute file path, or ("env", VAR), from buildx-style specs."""
    from lamina.errors import UsageError

    out = {}
    for item in options.secrets:
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        ident = fields.get("id")
        if not ident:
            raise UsageError(f"--secret {item!r}: id is required")
        if fields.get("env"):
            out[ident] = ("env", fields["env"])
            continue
        src = fields.get("src") or fields.get("source")
        if not src:
            out[ident] = ("env", ident)
            continue
        if not os.path.isfile(src):
            raise UsageError(f"--secret {item!r}: {src} is not a file")
        out[ident] = os.path.abspath(src)
    return out


def _cache_images(system, names) -> tuple[str, ...]:
    """cachefrom's images that are here, as IDs (dockerd skips the others, with a warning
    in its own log only; with none found, no step hits)."""
    from lamina.errors import LaminaError

    found = []
    for name in names:
        try:
            found.append(str(system.images.resolve(name).id))
        except LaminaError:
            continue
    return tuple(found)


def _network(options: BuildOptions) -> str:
    from lamina.network import is_default

    return "default" if is_default(options.network) else options.network


def _request(options: BuildOptions, text: str, name: str, dockerfile: str | None) -> dict:
    """What the memo key covers (everything but the context, fingerprinted apart)."""
    context_dir = os.path.abspath(options.path) if options.path != "-" else ""
    found = _ignore_file(context_dir, dockerfile) if context_dir else None
    ignore_text = found[1].decode("utf-8", "replace") if found else None
    return dict(dockerfile=text, name=name, build_args=dict(options.build_args), target=options.target,
                labels=dict(options.labels), network=_network(options), secrets=_secrets(options),
                ignore_text=ignore_text)


def _ignore_file(context_dir: str, dockerfile: str | None) -> tuple[str, bytes] | None:
    """(path, content) of the .dockerignore that applies: one rule for the memo probe
    and the build (builder.context, already imported on this path; the matcher is not)."""
    from lamina.builder.context import read_ignore_file_in_context

    return read_ignore_file_in_context(context_dir, dockerfile, MAX_DOCKERFILE)


def _read_dockerfile(context_dir: str, path: str) -> bytes | None:
    """The Dockerfile's bytes, resolved inside the context (see read_in_context)."""
    from lamina.builder.context import read_in_context

    return read_in_context(context_dir, path, MAX_DOCKERFILE)


def dockerfile_path(options: BuildOptions) -> str:
    """Where -f points (relative to the working directory if it exists there, else to
    the context), PATH/Dockerfile (or dockerfile) by default, "-" for stdin."""
    if options.dockerfile in (None, ""):
        for name in ("Dockerfile", "dockerfile"):
            path = os.path.join(options.path, name)
            if os.path.exists(path):
                return path
        return os.path.join(options.path, "Dockerfile")
    if options.dockerfile == "-":
        return "-"
    f = options.dockerfile
    return f if os.path.isabs(f) or os.path.exists(f) else os.path.join(options.path, f)


def _context(system, options: BuildOptions, stdin):
    """(context dir, Dockerfile text, its name for messages, temp dir to remove or None)."""
    from lamina.errors import UsageError

    if options.path == "-":
        from lamina.builder.context import context_from_stream

        work, text = context_from_stream(stdin, system.tmp_dir)
        if text is None:
            name = options.dockerfile or "Dockerfile"
            data = _read_dockerfile(work, os.path.join(work, name))
            if data is None:
                raise UsageError(f"Cannot locate specified Dockerfile: {name}")
            text = _decode(data, name)
        else:
            name = "Dockerfile"
        return work, text, os.path.basename(name), work
    if options.path.startswith(("http://", "https://", "git@", "git://")):
        raise UsageError("remote build contexts (URLs, git) are not supported yet")
    if not os.path.isdir(options.path):
        raise UsageError(f'unable to prepare context: path "{options.path}" not found')
    path = dockerfile_path(options)
    if path == "-":
        # read as text mode would: universal newlines
        text = _decode(stdin.read(), "Dockerfile").replace("\r\n", "\n").replace("\r", "\n")
        return os.path.abspath(options.path), text, "Dockerfile", None
    # docker's daemon resolves the Dockerfile inside the context: a link to a host
    # file is not found (and never read, so no line of it can reach a message).
    data = _read_dockerfile(os.path.abspath(options.path), path)
    if data is None:
        raise UsageError(f"Cannot locate specified Dockerfile: {os.path.basename(path)}")
    return os.path.abspath(options.path), _decode(data, path), os.path.basename(path), None


def _decode(data: bytes, path: str) -> str:
    from lamina.errors import BuildError

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BuildError(f"{os.path.basename(path)}: not valid UTF-8") from None


def _ignore(context_dir: str, dockerfile: str | None):
    from lamina.builder.dockerignore import IgnoreMatcher, read_ignore_file

    found = _ignore_file(context_dir, dockerfile)
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


def explanation(system, build: int | None = None) -> dict | None:
    """A build's cache explanation (the last build's by default): {"id", "created", "context",
    "dockerfile", "image", "steps": [{"step", "total", "text", "result" (HIT/MISS/-), "kind", "reason",
    "image"}]}; None when no build was recorded."""
    from lamina.builder.explain import last_record

    return last_record(system.db, build)
