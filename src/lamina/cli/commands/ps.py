"""`ps`: list containers, as docker's CLI shows them (table, -q, --format, -s, --filter).

Its own module: `ps -a` is start-up bound (docker's CLI answers in ~15 ms), so it loads
only what listing needs, not the container verbs' module (run's flags, create, ...).
"""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    from lamina.cli.flags import valid_filter

    p = sub.add_parser("ps", help="List containers")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true",
                   help="Show the latest created container (includes all states)")
    p.add_argument("--format", default=None, help="Pretty-print containers using a Go template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided",
                   metavar="filter", validate=valid_filter)
    p.set_defaults(func=cmd_ps)


def _status(rec, system=None) -> str:
    from lamina.engine.containers import status_text

    return status_text(system, rec)


def cmd_ps(system, args) -> int:
    from lamina.cli import fmt
    from lamina.engine.containers import command_of, list_containers, listed_image
    from lamina.quoting import go_quote

    if args.filter:  # engine/containerfilters.py: dockerd's filters, imported only for them
        from lamina.cli.flags import filters
        from lamina.cli.main import report
        from lamina.errors import DAEMON_PREFIX, LaminaError

        try:
            recs = list_containers(system, all=args.all, limit=_limit(args), filters=filters(args.filter))
        except LaminaError as e:  # dockerd refused the filter: docker's CLI shows its words
            report(e, DAEMON_PREFIX)
            return e.exit_code
    else:
        recs = list_containers(system, all=args.all, limit=_limit(args))
    if args.quiet and not fmt.wants_template(args.format):  # docker 20.10: a custom format beats -q
        sys.stdout.write("".join(f"{r.id if args.no_trunc else r.short_id}\n" for r in recs))  # one write
        return 0
    rows, images = [], {}
    for r in recs:
        command = command_of(r.config)
        if not args.no_trunc:
            command = fmt.ellipsis(command, 20)
        # docker quotes COMMAND with Go's %q, escaping what an image put there
        image = images.get((r.image_ref, r.image_id))
        if image is None:  # asked once per name and image, not per container (two queries each)
            image = images[r.image_ref, r.image_id] = listed_image(system, r)
        if image == r.image_id and not args.no_trunc:
            image = image.removeprefix("sha256:")[:12]  # docker's CLI: the short ID
        item = {"ID": r.id if args.no_trunc else r.short_id, "Image": image, "Command": go_quote(command),
                "CreatedAt": fmt.go_time(r.created), "RunningFor": fmt.since(r.created), "Status": _status(r, system),
                "Ports": _ports_column(system, r) if r.running else "", "Names": r.name, "State": r.state,
                "Labels": "", "Mounts": "", "Networks": ""}
        rows.append(item)
    if fmt.wants_template(args.format) or getattr(args, "size", False):
        from lamina.cli import formatctx

        template = args.format if fmt.wants_template(args.format) else formatctx.PS_TABLE_WITH_SIZE
        if args.format == "raw":  # docker's RawFormatKey: one block per container, or its ID with -q
            template = formatctx.PS_RAW_QUIET if args.quiet else \
                formatctx.PS_RAW + ("size: {{.Size}}\n" if args.size else "")
        sized = formatctx.wants_size(args)
        contexts = [formatctx.container_context(dict(item, Networks=formatctx.network_names(r),
                                                     **formatctx.mounts_fields(system, r, args)),
                                                dict(r.config.get("Labels") or {}),
                                                formatctx.container_size(system, r) if sized else None)
                    for r, item in zip(recs, rows)]
        return fmt.print_listing(template, contexts, formatctx.CONTAINER_HEADERS,
                                 parse_error="failed to parse template", exec_error="failed to execute template")
    fmt.table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
              [[i["ID"], i["Image"], i["Command"], i["RunningFor"], i["Status"], i["Ports"], i["Names"]] for i in rows])
    return 0


def _limit(args) -> int:
    """The API's `limit` docker's CLI sends: -n N, else 1 for -l; none (0) for -n 0 or
    below, as dockerd reads those (running containers only, unless -a)."""
    if args.last == -1:
        return 1 if args.latest else 0
    return max(args.last, 0)


def _ports_column(system, rec) -> str:
    from lamina.cli.formatctx import ports_column  # for running containers only

    return ports_column(system, rec)
