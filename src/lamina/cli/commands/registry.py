"""Registry verbs: pull, push, login, logout (and the CLI's `ensure_image` for run)."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    from lamina.cli.flags import SUPPRESS
    from lamina.errors import DAEMON_PREFIX

    p = sub.add_parser("pull", help="Pull an image or a repository from a registry")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--platform", default=None, help="Set platform if server is multi-platform capable")
    p.add_argument("-a", "--all-tags", action="store_true", help=SUPPRESS)
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.set_defaults(func=cmd_pull, error_verbatim=("Error",), error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("push", help="Push an image or a repository to a registry")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--compression", default="gzip", choices=("gzip", "zstd"),
                   help="Compression for layers that are stored uncompressed (default gzip)")
    p.add_argument("name", metavar="NAME[:TAG]")
    # docker prints what goes wrong during a push as the daemon's progress stream says it: bare
    p.set_defaults(func=cmd_push, error_verbatim=("Error",), error_prefix="")

    p = sub.add_parser("login", help="Log in to a Docker registry")
    p.add_argument("-u", "--username", default=None, help="Username")
    p.add_argument("-p", "--password", default=None, help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    p.add_argument("server", nargs="?", default=None, metavar="SERVER")
    p.set_defaults(func=cmd_login, needs_system=False, error_verbatim=("Error",))

    p = sub.add_parser("logout", help="Log out from a Docker registry")
    p.add_argument("server", nargs="?", default=None, metavar="SERVER")
    p.set_defaults(func=cmd_logout, needs_system=False, error_verbatim=("Error",))


def cmd_pull(system, args) -> int:
    from lamina.engine import images as engine
    from lamina.errors import UsageError
    from lamina.reference import parse
    from lamina.transfer.progress import for_stream

    if args.all_tags:
        raise UsageError("pull --all-tags is not supported")
    ref = parse(args.name, default_tag=False)  # strict: no network call for a bad name
    if args.platform:
        from lamina.transfer.platforms import parse_platform

        parse_platform(args.platform)  # a bad --platform is refused before the banner line
    progress = for_stream(sys.stdout, quiet=args.quiet)
    if ref.tag is None and ref.digest is None:
        progress.line("Using default tag: latest")
        ref = parse(args.name)
    engine.pull(system, ref, progress=progress, platform=args.platform)
    print(ref.name)
    return 0


def ensure_image(system, name: str, *, out, platform: str | None = None):
    """engine.images.ensure_image with the CLI's sinks: pull progress on `out`,
    `Unable to find image` on stderr (as run and build FROM show it)."""
    from lamina.engine.images import ensure_image as ensure
    from lamina.transfer.progress import for_stream

    return ensure(system, name, progress=for_stream(out), platform=platform, notice=stderr_notice)


def stderr_notice(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def cmd_push(system, args) -> int:
    from lamina.engine import images as engine
    from lamina.reference import parse
    from lamina.transfer.compress import check_compression
    from lamina.transfer.progress import for_stream

    ref = parse(args.name, default_tag=False)
    check_compression(args.compression)  # refused before the banner line
    progress = for_stream(sys.stdout, quiet=args.quiet)
    if ref.tag is None and ref.digest is None:
        progress.line("Using default tag: latest")
        ref = parse(args.name)
    engine.push(system, ref, progress=progress, compression=args.compression)
    if args.quiet:
        print(ref.name)
    return 0


def cmd_login(system, args) -> int:
    import getpass

    from lamina.errors import UsageError
    from lamina.reference import DEFAULT_DOMAIN
    from lamina.remote.auth import Credentials, DockerConfig
    from lamina.remote.hosts import normalize_server
    from lamina.remote.login import verify_login

    domain = normalize_server(args.server) if args.server else DEFAULT_DOMAIN
    config = DockerConfig()
    username, password = args.username, args.password
    if args.password_stdin:
        if password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if username is None and password is None:
        existing = config.get(domain)
        if existing is not None:
            sys.stdout.write("Authenticating with existing credentials...\n")
            try:
                verify_login(domain, existing)
                print("Login Succeeded")
                return 0
            except Exception:  # noqa: BLE001 - stale credentials: ask again, like docker
                sys.stderr.write("Stored credentials invalid or expired\n")
    if not sys.stdin.isatty() and (not username or not password):
        raise UsageError("Cannot perform an interactive login from a non TTY device")
    if not username:
        username = input("Username: ").strip()
    if not username:
        raise UsageError("Username is required")
    if not password:
        password = getpass.getpass("Password: ")
    if not password:
        raise UsageError("Password is required")
    creds = Credentials(username, password)
    verify_login(domain, creds)
    helper = config.store(domain, creds)
    if helper is None:
        sys.stderr.write(f"WARNING! Your password will be stored unencrypted in {config.path}.\n"
                         "Configure a credential helper to remove this warning. See\n"
                         "https://docs.docker.com/engine/reference/commandline/login/#credentials-store\n\n")
    print("Login Succeeded")
    return 0


def cmd_logout(system, args) -> int:
    from lamina.reference import DEFAULT_DOMAIN
    from lamina.remote.auth import DockerConfig
    from lamina.remote.hosts import config_key, normalize_server

    domain = normalize_server(args.server) if args.server else DEFAULT_DOMAIN
    if DockerConfig().erase(domain):
        print(f"Removing login credentials for {config_key(domain)}")
    else:
        print(f"Not logged in to {config_key(domain)}")
    return 0
