"""docker's management-command forms `container SUBCOMMAND` and `image SUBCOMMAND`
(docker 20.10's lists): each is another name of a top-level verb (`container ls` is `ps`,
`image rm` is `rmi`), parsed by that verb's own flags under the longer name, so its help
and errors say `lamina container ls` as docker's say `docker container ls`.

`resolve` finds the verb before any parser is built (only that verb's module is loaded),
`nest` moves the verb's parser under its group.  `image diff` is lamina's own
(commands/layers.py); docker's `container prune` and `image prune` have no lamina verb.
"""

from __future__ import annotations

import sys

# subcommand -> (the top-level verb, cobra's aliases, docker's one-line help)
CONTAINER = {
    "attach": ("attach", (), "Attach local standard input, output, and error streams to a running container"),
    "commit": ("commit", (), "Create a new image from a container's changes"),
    "cp": ("cp", (), "Copy files/folders between a container and the local filesystem"),
    "create": ("create", (), "Create a new container"),
    "diff": ("diff", (), "Inspect changes to files or directories on a container's filesystem"),
    "exec": ("exec", (), "Run a command in a running container"),
    "export": ("export", (), "Export a container's filesystem as a tar archive"),
    "inspect": ("inspect", (), "Display detailed information on one or more containers"),
    "kill": ("kill", (), "Kill one or more running containers"),
    "logs": ("logs", (), "Fetch the logs of a container"),
    "ls": ("ps", ("ps", "list"), "List containers"),
    "pause": ("pause", (), "Pause all processes within one or more containers"),
    "port": ("port", (), "List port mappings or a specific mapping for the container"),
    "rename": ("rename", (), "Rename a container"),
    "restart": ("restart", (), "Restart one or more containers"),
    "rm": ("rm", (), "Remove one or more containers"),
    "run": ("run", (), "Run a command in a new container"),
    "start": ("start", (), "Start one or more stopped containers"),
    "stats": ("stats", (), "Display a live stream of container(s) resource usage statistics"),
    "stop": ("stop", (), "Stop one or more running containers"),
    "top": ("top", (), "Display the running processes of a container"),
    "unpause": ("unpause", (), "Unpause all processes within one or more containers"),
    "update": ("update", (), "Update configuration of one or more containers"),
    "wait": ("wait", (), "Block until one or more containers stop, then print their exit codes"),
}
IMAGE = {
    "build": ("build", (), "Build an image from a Dockerfile"),
    "history": ("history", (), "Show the history of an image"),
    "import": ("import", (), "Import the contents from a tarball to create a filesystem image"),
    "inspect": ("inspect", (), "Display detailed information on one or more images"),
    "load": ("load", (), "Load an image from a tar archive or STDIN"),
    "ls": ("images", ("list",), "List images"),
    "pull": ("pull", (), "Pull an image or a repository from a registry"),
    "push": ("push", (), "Push an image or a repository to a registry"),
    "rm": ("rmi", ("rmi", "remove"), "Remove one or more images"),
    "save": ("save", (), "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "tag": ("tag", (), "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
}
GROUPS = {"container": (CONTAINER, "Manage containers"), "image": (IMAGE, "Manage images")}


def resolve(argv: list[str], group: str) -> tuple[str, str, str] | None:
    """(group, subcommand, top-level verb) of `lamina [global options] GROUP SUB …` when
    SUB (or one of its aliases) names a top-level verb; None otherwise (help, `image diff`)."""
    from lamina.cli.main import _GLOBAL_WITH_VALUE

    table = GROUPS[group][0]
    at = next((i for i, a in enumerate(argv) if a == group and (i == 0 or argv[i - 1] not in _GLOBAL_WITH_VALUE)),
              len(argv))
    word = argv[at + 1] if at + 1 < len(argv) else ""
    for name, (verb, aliases, _) in table.items():
        if word == name or word in aliases:
            return group, name, verb
    return None


def nest(root, group: str, name: str, verb: str) -> None:
    """Move `verb`'s parser (build_parser(verb) made it) under a `group` command as `name`."""
    from lamina.cli.flags import Command

    table, help_text = GROUPS[group]
    cmd = root.subcommands.pop(verb)
    parent = Command(group, help_text, parent=root)
    parent.add_subparsers(dest="verb")
    _, aliases, line = table[name]
    cmd.name, cmd.parent, cmd.aliases, cmd.help = name, parent, aliases, line
    parent.subcommands.update({name: cmd, **{a: cmd for a in aliases}})
    cmd.defaults["verb"] = verb  # what the verb's code reads (pause/unpause share one function)
    if verb == "inspect":  # `container inspect` and `image inspect` look at their own kind only
        _own_kind(cmd, group)
    root.subcommands[group] = parent


def _own_kind(cmd, group: str) -> None:
    """inspect's parser as docker's `container inspect` (-f, -s) or `image inspect` (-f)."""
    dropped = ("type",) if group == "container" else ("type", "size")
    cmd.defaults.update(type=group, size=False)
    cmd.flags = [f for f in cmd.flags if f.dest not in dropped]
    cmd.long = {k: f for k, f in cmd.long.items() if f.dest not in dropped}
    cmd.short = {k: f for k, f in cmd.short.items() if f.dest not in dropped}
    for f in cmd.flags:
        if f.dest == "size":
            f.help = "Display total file sizes"
    cmd.positionals = [(dest, nargs, group.upper()) for dest, nargs, _ in cmd.positionals]


def add_parsers(sub) -> None:
    """`container` (and the listing of `image`, whose `diff` is commands/layers.py's) for
    help: the subcommands run through resolve/nest, not through these entries."""
    from lamina.cli.flags import unused

    for group, (table, help_text) in GROUPS.items():
        p = sub.subcommands.get(group)
        if p is None:
            p = sub.add_parser(group, help=help_text)
            if unused(p):
                continue  # not this command line's verb
            p.add_subparsers(dest=f"{group}_command", metavar="COMMAND")
            p.set_defaults(func=lambda system, args, p=p: (sys.stdout.write(p.help_text()), 0)[1],
                           needs_system=False)
        for name, (_, _, line) in table.items():
            if name not in p.subcommands:
                p.add_parser(name, help=line)
        p.subcommands = dict(sorted(p.subcommands.items()))  # docker lists them in order
