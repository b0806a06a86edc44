"""The command line parsed as docker's CLI parses it (Go's pflag under cobra).

One small table-driven parser instead of argparse, for two reasons: docker's
rules differ from argparse's (`--name -lead` takes `-lead` as the value, flags
after `run`'s image are the command's, `-abc` combines bools, `--rm=false`, the
error texts and exit codes), and argparse costs more start-up time than a read
verb has to spend.  Commands are declared with an argparse-shaped subset
(`add_parser`, `add_argument`, `set_defaults`) so the verb modules read as before.

Errors print as docker 20.10's CLI prints them: a flag error is one line plus
`See 'lamina VERB --help'.` (exit 125); a wrong number of arguments adds the
usage block (exit 1).
"""

from __future__ import annotations

import sys

REMAINDER = "..."  # nargs: everything after the first positional (run's COMMAND [ARG...])
SUPPRESS = "==SUPPRESS=="  # help: hidden from --help, as docker's hidden flags
PROG = "lamina"

_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


class UsageExit(Exception):
    """A command line docker's CLI would refuse: what to print and the exit code."""

    def __init__(self, text: str, code: int) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class Args:
    """The parsed command line: one attribute per flag and positional (argparse's names)."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Args({self.__dict__!r})"


class Flag:
    __slots__ = ("long", "short", "dest", "kind", "default", "help", "choices", "validate", "metavar")

    def __init__(self, long, short, dest, kind, default, help, choices, validate, metavar) -> None:
        self.long, self.short, self.dest, self.kind = long, short, dest, kind
        self.default, self.help, self.choices, self.validate = default, help, choices, validate
        self.metavar = metavar

    def label(self) -> str:
        """How pflag names the flag in an error: `-a, --all` or `--format`."""
        return f"-{self.short}, --{self.long}" if self.short and self.long else \
            (f"--{self.long}" if self.long else f"-{self.short}")


class Command:
    """One verb: its flags (a table by long and short name), positionals and defaults.

    `interspersed=False` is docker's run/create/exec: flags end at the first positional."""

    def __init__(self, name: str, help: str = "", usage: str | None = None, interspersed: bool = True,
                 parent: Command | None = None, max_args: int | None = -1) -> None:
        self.name, self.help, self._usage, self.interspersed = name, help or "", usage, interspersed
        self.max_args = max_args  # -1: from the positionals; None: no limit checked (cobra's RequiresMinArgs)
        self.parent = parent
        self.flags: list[Flag] = []
        self.long: dict[str, Flag] = {}
        self.short: dict[str, Flag] = {}
        self.positionals: list[tuple[str, object, str]] = []  # (dest, nargs, metavar)
        self.defaults: dict = {}
        self.subcommands: dict[str, Command] | None = None
        self.sub_dest: str | None = None
        self._only: str | None = None
        self.aliases: tuple[str, ...] = ()

    # -- declaring (argparse's names, the subset the verbs use)

    def add_argument(self, *names: str, action: str | None = None, default=None, help: str | None = None,
                     choices=None, nargs=None, metavar: str | None = None, type=None, dest: str | None = None,
                     validate=None) -> None:
        if not names[0].startswith("-"):
            self.positionals.append((names[0], nargs, metavar or names[0].upper()))
            if default is not None:
                self.defaults[names[0]] = default
            return
        long = next((n[2:] for n in names if n.startswith("--")), None)
        short = next((n[1:] for n in names if not n.startswith("--")), None)
        if action not in (None, "store_true", "append") or type not in (None, int, str):
            raise TypeError(f"flags: {names[0]}: action={action!r}, type={type!r} are not supported")
        kind = {"store_true": "bool", "append": "list"}.get(action or "", "int" if type is int else "str")
        dest = dest or (long or short).replace("-", "_")
        if kind == "bool" and default is None:
            default = False
        flag = Flag(long, short, dest, kind, default, help, choices, validate, metavar)
        self.flags.append(flag)
        for n in names:
            if n.startswith("--"):
                self.long[n[2:]] = flag
            else:
                self.short[n[1:]] = flag

    def set_defaults(self, **values) -> None:
        self.defaults.update(values)

    def add_subparsers(self, dest: str, metavar: str | None = None, only: str | None = None, **_) -> Command:
        """`only`: the one verb this command line runs; the others a module declares are dropped."""
        self.subcommands = {}
        self.sub_dest = dest
        self._only = only
        return self

    def add_parser(self, name: str, help: str = "", usage: str | None = None, interspersed: bool = True,
                   max_args: int | None = -1, aliases: tuple[str, ...] = ()) -> Command:
        """`aliases`: cobra's, other names of the subcommand (`network list`); not in the help."""
        if self._only not in (None, name):
            return _UNUSED
        cmd = Command(name, help, usage, interspersed, parent=self, max_args=max_args)
        self.subcommands[name] = cmd
        cmd.aliases = aliases
        for alias in aliases:
            self.subcommands[alias] = cmd
        return cmd

    # -- parsing

    @property
    def path(self) -> str:
        return f"{self.parent.path} {self.name}" if self.parent else self.name

    def usage(self) -> str:
        from lamina.cli.flaghelp import usage  # the texts of --help and of errors: only when shown

        return usage(self)

    def fail(self, message: str) -> UsageExit:
        return UsageExit(f"{message}\nSee '{self.path} --help'.\n", 125)

    def parse(self, argv: list[str], into: dict | None = None) -> Args:
        values = {} if into is None else into
        for f in self.flags:
            values[f.dest] = list(f.default or ()) if f.kind == "list" else f.default
        values.update(self.defaults)
        helps = "h" not in self.short  # cobra's -h is help unless a flag took it (run's --hostname)
        positionals: list[str] = []
        i, n = 0, len(argv)
        while i < n:
            a = argv[i]
            i += 1
            if a == "--":
                positionals += argv[i:]
                break
            if a.startswith("--"):
                name, eq, value = a[2:].partition("=")
                if name == "help":
                    raise UsageExit(self.help_text(), 0)
                flag = self.long.get(name)
                if flag is None:
                    raise self.fail(f"unknown flag: --{name}")
                if flag.kind != "bool" and not eq:
                    if i >= n:
                        raise self.fail(f"flag needs an argument: --{name}")
                    value, i = argv[i], i + 1
                self._set(values, flag, value if eq or flag.kind != "bool" else None)
            elif a.startswith("-") and len(a) > 1:
                j = 1
                while j < len(a):
                    c = a[j]
                    flag = self.short.get(c)
                    if flag is None:
                        if c == "h" and helps:
                            raise UsageExit(self.help_text(), 0)
                        raise self.fail(f"unknown shorthand flag: '{c}' in -{a[j:]}")
                    rest = a[j + 1:]
                    if flag.kind == "bool":
                        if rest.startswith("=") and len(rest) > 1:  # pflag: `-a=` is flags a and =, not a value
                            self._set(values, flag, rest[1:])
                            break
                        self._set(values, flag, None)
                        j += 1
                        continue
                    if rest:
                        value = rest[1:] if rest.startswith("=") and len(rest) > 1 else rest
                    elif i < n:
                        value, i = argv[i], i + 1
                    else:
                        raise self.fail(f"flag needs an argument: '{c}' in -{c}")
                    self._set(values, flag, value)
                    break
            elif self.subcommands:
                sub = self.subcommands.get(a)
                if sub is None:
                    raise UsageExit(f"{PROG}: '{a}' is not a {self.path} command.\nSee '{self.path} --help'\n", 1)
                values[self.sub_dest] = a
                for k in self.defaults:  # the parent's own action (e.g. print its help) is not the child's
                    if k not in (f.dest for f in self.flags):
                        values.pop(k, None)
                return sub.parse(argv[i:], values)
            elif not self.interspersed:
                positionals.append(a)
                positionals += argv[i:]
                break
            else:
                positionals.append(a)
        self._positionals(values, positionals)
        return Args(**values)

    def _set(self, values: dict, flag: Flag, value: str | None) -> None:
        if flag.kind == "bool":
            if value is None or value in _TRUE:
                values[flag.dest] = True
            elif value in _FALSE:
                values[flag.dest] = False
            else:
                raise self.fail(f'invalid argument "{value}" for "{flag.label()}" flag: '
                                f'strconv.ParseBool: parsing "{value}": invalid syntax')
            return
        if flag.kind == "int":
            try:
                number = _go_int(value)
            except ValueError:
                raise self.fail(f'invalid argument "{value}" for "{flag.label()}" flag: '
                                f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
            if not -(1 << 63) <= number < (1 << 63):  # pflag's int64: no bigger number reaches the daemon
                raise self.fail(f'invalid argument "{value}" for "{flag.label()}" flag: '
                                f'strconv.ParseInt: parsing "{value}": value out of range')
            value = number
        if flag.choices is not None and value not in flag.choices:
            raise self.fail(f'invalid argument "{value}" for "{flag.label()}" flag: must be one of '
                            + ", ".join(f'"{c}"' for c in flag.choices))
        if flag.validate is not None:
            problem = flag.validate(value)
            if problem:
                raise self.fail(f'invalid argument "{value}" for "{flag.label()}" flag: {problem}')
        if flag.kind == "list":
            values[flag.dest].append(value)
        else:
            values[flag.dest] = value

    def _positionals(self, values: dict, given: list[str]) -> None:
        lo = hi = 0
        for _dest, nargs, _m in self.positionals:
            lo += 0 if nargs in ("?", "*", REMAINDER) else 1
            hi = None if hi is None or nargs in ("+", "*", REMAINDER) else hi + 1
        if self.max_args != -1:
            hi = self.max_args
        if len(given) < lo or (hi is not None and len(given) > hi):
            raise UsageExit(self._count_error(lo, hi), 1)
        k = 0
        for idx, (dest, nargs, _m) in enumerate(self.positionals):
            if nargs in ("+", "*", REMAINDER):
                after = sum(1 for _d, na, _x in self.positionals[idx + 1:] if na is None)
                take = given[k:len(given) - after]
                values[dest] = take
                k += len(take)
            elif nargs == "?":
                if k < len(given):
                    values[dest] = given[k]
                    k += 1
                else:
                    values.setdefault(dest, None)
            else:
                values[dest] = given[k]
                k += 1

    def _count_error(self, lo: int, hi: int | None) -> str:
        from lamina.cli.flaghelp import count_error

        return count_error(self, lo, hi)

    def help_text(self) -> str:
        from lamina.cli.flaghelp import help_text

        return help_text(self)


class _Unused:
    """A verb the command line does not run, declared by the module of one it does
    (`start` shares a module with `run` and its ~80 flags): its declarations cost nothing."""

    def add_argument(self, *names, **options) -> None:
        pass

    def set_defaults(self, **values) -> None:
        pass

    def add_subparsers(self, *args, **options) -> _Unused:
        return self

    def add_parser(self, *args, **options) -> _Unused:
        return self


_UNUSED = _Unused()


def unused(parser) -> bool:
    """Is `parser` a verb this command line does not run (its flags need not be declared)?"""
    return parser is _UNUSED


def _go_int(text: str) -> int:
    """pflag's int: strconv.ParseInt(text, 0, 64) (0x1f, 0o17, 0b11, 017, 1_000; no spaces,
    which Python's int() takes); ValueError when Go would refuse the syntax."""
    body = text[1:] if text[:1] in ("+", "-") else text
    base, digits = 10, body
    if body[:2].lower() in ("0x", "0o", "0b"):
        base, digits = {"x": 16, "o": 8, "b": 2}[body[1].lower()], body[2:]
    elif body[:1] == "0" and len(body) > 1:
        base, digits = 8, body[1:]
    # Go's underscoreOK: each "_" between digits (a base prefix counts as one)
    if "_" in body and (body[:1] == "_" or body[-1:] == "_" or "__" in body):
        raise ValueError(text)
    digits = digits.replace("_", "")
    if not digits or not digits.isascii() or not digits.isalnum():
        raise ValueError(text)
    number = int(digits, base)
    return -number if text[:1] == "-" else number


def key_values(values: list[str]) -> dict:
    """`--label k=v`, `--opt k=v` as docker's opts.ConvertKVStringsToMap: a bare `k` is
    `k=""`, the last of a repeated key wins."""
    out = {}
    for v in values:
        k, _, val = v.partition("=")
        out[k] = val
    return out


def valid_filter(value: str) -> str | None:
    """docker's opts.FilterOpt: a --filter is `name=value` (an empty one is no filter)."""
    return None if not value or "=" in value else "bad format of filter (expected name=value)"


def filters(values: list[str]) -> dict[str, list[str]]:
    """--filter values as docker's CLI sends them (filters.ParseFlag): {name: [value, ...]},
    the name lowercased, name and value trimmed."""
    out: dict[str, list[str]] = {}
    for v in values:
        problem = valid_filter(v)
        if problem:  # a verb whose flag does not check it (valid_filter) as it is parsed
            from lamina.errors import UsageError

            raise UsageError(problem)
        if v:
            k, _, val = v.partition("=")
            out.setdefault(k.strip().lower(), []).append(val.strip())
    return out


def valid_env(value: str) -> str | None:
    """docker's opts.ValidateEnv: a variable needs a name (`=x` and `` are refused)."""
    if not value.partition("=")[0]:
        return f"invalid environment variable: {value}"
    return None


def run(cmd: Command, argv: list[str]) -> Args | int:
    """Parse, or print what docker prints for a refused command line and return its exit code."""
    try:
        return cmd.parse(argv)
    except UsageExit as e:
        (sys.stdout if e.code == 0 else sys.stderr).write(e.text)
        return e.code
