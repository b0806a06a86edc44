"""`lamina ui`: serve the web view of the layers (lamina/ui) on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    p = sub.add_parser("ui", help="Open a local web page that draws images, layers, containers and builds")
    p.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="Print the URL only; do not open a browser")
    p.set_defaults(func=cmd_ui, needs_system=False)


def cmd_ui(system, args) -> int:
    from lamina.errors import LaminaError, UsageError
    from lamina.system import System

    if not 0 <= args.port <= 65535:
        raise UsageError(f"invalid port {args.port}: it must be between 0 and 65535")
    options = {"storage_driver": args.storage_driver, "runtime": args.runtime}
    System(args.root, **options).close()  # a store that cannot be opened fails here, not on the page
    from lamina.ui.server import UIServer

    try:
        server = UIServer(args.port, root=args.root, **options)
    except OSError as e:
        why = e.strerror or str(e)  # Go's words: "bind: address already in use"
        raise LaminaError(f"listen tcp 127.0.0.1:{args.port}: bind: {why[:1].lower()}{why[1:]}") from None
    with server:
        sys.stdout.write(f"lamina ui: serving the store's layers at\n    {server.url}\n(Ctrl-C stops it)\n")
        sys.stdout.flush()
        if not args.no_browser:
            import webbrowser

            try:
                webbrowser.open(server.url)
            except Exception:  # no browser here: the printed URL is the way in
                pass
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0
