"""`system service`: the Docker Engine API on a socket (lamina.api), as `podman system service`."""

from __future__ import annotations

import sys


def add_service_parser(ssub) -> None:
    c = ssub.add_parser("service", help="Serve the Docker Engine API (docker's CLI and docker-py drive lamina "
                                        "through DOCKER_HOST=unix:///run/lamina/docker.sock)")
    c.add_argument("--socket", default=None, help="unix socket path (default /run/lamina/docker.sock)")
    c.add_argument("-H", "--host", default=None, help="unix:///PATH or tcp://ADDR:PORT (TCP: loopback unless an "
                                                      "address is named; unauthenticated)")
    c.add_argument("-t", "--timeout", default=5, type=int,
                   help="Exit after this many seconds without a connection (0: never)")
    c.add_argument("--group", default=None, help="Group granted the socket besides root (mode 0660 root:GROUP)")
    c.add_argument("--log-requests", action="store_true", help="Log each request on stderr")
    c.set_defaults(func=cmd_service, needs_system=False)


def cmd_service(system, args) -> int:
    import signal

    from lamina.api.listen import open_listener
    from lamina.api.service import Service
    from lamina.errors import UsageError

    if args.timeout < 0:
        raise UsageError("--timeout must be 0 or more seconds")
    listener = open_listener(args.host, args.socket, args.group)
    service = Service(listener, root=args.root, storage_driver=args.storage_driver, runtime=args.runtime,
                      timeout=args.timeout, verbose=args.log_requests)

    def stop(signum, frame):
        import threading

        threading.Thread(target=service.shutdown, daemon=True).start()  # shutdown() waits for the loop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(f"lamina: serving the Docker Engine API on {listener.address}\n")
    sys.stderr.flush()
    service.run()
    return 0
