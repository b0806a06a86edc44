"""The texts docker's CLI prints about a command: its usage line, its --help, and the
error for a wrong number of arguments (cobra's).  Apart from flags.py, which parses on
every command, because they are printed only on --help or a refused command line."""

from __future__ import annotations

from lamina.cli.flags import REMAINDER, SUPPRESS


def usage(cmd) -> str:
    """`lamina VERB [OPTIONS] ...`: the command's own usage text, else one made from its flags and operands."""
    if cmd._usage is not None:
        return f"{cmd.path} {cmd._usage}".rstrip()
    parts = ["[OPTIONS]"] if cmd.flags else []
    if cmd.subcommands is not None:
        parts.append("COMMAND")
    for _dest, nargs, metavar in cmd.positionals:
        if nargs == "?":
            parts.append(f"[{metavar}]")
        elif nargs == "+":
            parts.append(f"{metavar} [{metavar}...]")
        elif nargs in ("*", REMAINDER):
            parts.append(f"[{metavar}...]")
        else:
            parts.append(metavar)
    return " ".join([cmd.path] + parts)


def count_error(cmd, lo: int, hi: int | None) -> str:
    """cobra's error for an operand count outside [lo, hi] (hi None: no upper bound), with the usage block."""
    def n(k: int) -> str:
        return f"{k} argument" + ("" if k == 1 else "s")

    if hi == 0:
        what = "accepts no arguments"
    elif hi is None:
        what = f"requires at least {n(lo)}"
    elif lo == hi:
        what = f"requires exactly {n(lo)}"
    elif lo == 0:
        what = f"requires at most {n(hi)}"
    else:
        what = f"requires at least {lo} and at most {n(hi)}"
    return (f'"{cmd.path}" {what}.\nSee \'{cmd.path} --help\'.\n\n'
            f"Usage:  {usage(cmd)}\n\n{cmd.help}\n")


def help_text(cmd) -> str:
    """`--help`: usage, aliases, options (sorted, with Go's defaults) and subcommands, as cobra lays them out."""
    out = [f"\nUsage:  {usage(cmd)}\n\n{cmd.help}\n"]
    if cmd.aliases:
        out.append(f"\nAliases:\n  {', '.join((cmd.name, *cmd.aliases))}\n")
    shown = [f for f in cmd.flags if f.help != SUPPRESS]
    if shown:
        rows = []
        for f in sorted(shown, key=lambda f: f.long or f.short):
            kind = {"str": " string", "list": " list", "int": " int"}.get(f.kind, "")
            if f.metavar and f.kind != "bool":
                kind = f" {f.metavar}"
            name = (f"-{f.short}, " if f.short else "    ") + (f"--{f.long}" if f.long else "") + kind
            text = f.help or ""
            if f.default not in (None, False, "", []) and f.kind != "list":
                shown_default = "true" if f.default is True else f.default  # as Go prints it
                text += f' (default "{f.default}")' if f.kind == "str" else f" (default {shown_default})"
            rows.append((name, text))
        width = max(len(r[0]) for r in rows) + 3
        out.append("\nOptions:\n")
        out += [f"  {name.ljust(width)}{text}".rstrip() + "\n" for name, text in rows]
    shown = {k: c for k, c in (cmd.subcommands or {}).items() if k == c.name}  # not the aliases
    if shown:
        out.append("\nCommands:\n")
        width = max(len(k) for k in shown) + 2
        out += [f"  {k.ljust(width)}{c.help}\n" for k, c in shown.items()]
        out.append(f"\nRun '{cmd.path} COMMAND --help' for more information on a command.\n")
    return "".join(out)
