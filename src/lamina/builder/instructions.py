"""Typed, validated instructions from parser nodes (BuildKit's `instructions` package).

Public API::

    parse_stages(result: ParseResult) -> tuple[list[Stage], list[Arg]]   # stages, global ARGs
    parse_instruction(node, *, filename="Dockerfile", escape="\\\\") -> Instruction
    parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> Mount   # mountspec.py
    parse_duration(text: str) -> int            # Go's time.ParseDuration, in nanoseconds (gotext.py)
    EXPANDS, EXPANDED_FLAGS                     # what the executor expands (see below)
    From, Run, Copy, ... Stage                  # the instruction types (commands.py)

Every instruction is a frozen dataclass holding its source `node` (line range, original
text) and its fields *raw*: quotes, escapes and `$VAR`s are still in place, because
Docker expands with the values in scope when the instruction runs.  The executor
expands, with shell.ShellLex and the Dockerfile's escape token, exactly the fields of
the keywords in EXPANDS and the flags in EXPANDED_FLAGS; nothing else is ever expanded
(RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK text is left to the shell; ONBUILD text is
stored as written).  RUN mounts are parsed here only to report mistakes early: call
`parse_mount(mount.spec, expand)` at build time for the final values.

All errors are BuildError("<file>:<line>: <message>") with BuildKit's wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lamina.errors import BuildError, InstructionError
from lamina.quoting import go_quote

from .commands import (  # noqa: F401 - the types are this module's API (`instructions as I`)
    Add, Arg, Cmd, Copy, Entrypoint, Env, Expose, From, Healthcheck, Instruction, Label, Maintainer,
    Onbuild, Run, Shell, Stage, StopSignal, User, Volume, Workdir, _CommandLine, _Transfer)
from .gotext import go_int, parse_duration  # noqa: F401 - parse_duration: API
from .mountspec import Mount, parse_mount  # noqa: F401 - API
from .parser import Heredoc, Node, ParseResult, parse_heredoc, split_words
from .shell import ShellLex

# Keywords whose fields the executor expands (ENV/LABEL/ARG: keys and values; EXPOSE:
# each port, then split into words again; FROM: image with global ARGs only).
EXPANDS = frozenset({"add", "arg", "copy", "env", "expose", "from", "label", "stopsignal", "user", "volume", "workdir"})
# Flag values expanded even where the instruction text is not (RUN mounts: all but from).
EXPANDED_FLAGS = {"add": ("chown", "chmod", "checksum"), "copy": ("chown", "chmod"), "from": ("platform",),
                  "run": ("mount", "network")}  # fmt: skip


_Error = InstructionError


def parse_stages(result: ParseResult) -> tuple[list[Stage], list[Arg]]:
    """Group instructions into stages; ARGs before the first FROM are global."""
    stages: list[tuple[From, list[Instruction]]] = []
    global_args: list[Arg] = []
    for node in result.nodes:
        ins = parse_instruction(node, filename=result.filename, escape=result.escape)
        if isinstance(ins, From):
            if ins.name is not None and any(f.name == ins.name for f, _ in stages):
                raise result.error(node, f'duplicate stage name "{ins.name}"')
            stages.append((ins, []))
        elif stages:
            stages[-1][1].append(ins)
        elif isinstance(ins, Arg):
            global_args.append(ins)
        else:
            raise result.error(node, "no build stage in current context")
    return [
        Stage(f.name, i, f.image, f.platform, tuple(cmds), f.line, f) for i, (f, cmds) in enumerate(stages)
    ], global_args


def parse_instruction(node: Node, *, filename: str = "Dockerfile", escape: str = "\\") -> Instruction:
    entry = _PARSERS.get(node.keyword)
    if entry is None:
        raise BuildError(f"{filename}:{node.start_line}: unknown instruction: {node.keyword}")
    spec, parser = entry
    try:
        return parser(node, _flags(node, spec), escape)
    except InstructionError as e:
        raise e.at(filename, node.start_line) from None


# -- flags (BuildKit's bflag) -----------------------------------------------------------

_BOOL, _STR, _LIST = "bool", "string", "strings"


class _Flags(dict):
    """The flags used: name -> bool | str | list[str] (repeatable flags)."""

    def str(self, name: str) -> str | None:
        return self.get(name)

    def bool(self, name: str) -> bool:
        return bool(self.get(name, False))


def _flags(node: Node, spec: dict[str, str]) -> _Flags:
    used = _Flags()
    for token in node.flags:
        if token == "--":
            break
        if not token.startswith("--"):
            raise _Error(f"arg should start with -- : {token}")
        name, has_value, value = token[2:].partition("=")
        kind = spec.get(name)
        if kind is None:
            raise _Error(f"unknown flag: {name}")
        if name in used and kind != _LIST:
            raise _Error(f"duplicate flag specified: {name}")
        if kind == _BOOL:
            if has_value and value == "":
                raise _Error(f"missing a value on flag: {name}")
            if value.lower() not in ("", "true", "false"):
                raise _Error(f"expecting boolean value for flag {name}, not: {value}")
            used[name] = value.lower() != "false"
        elif not has_value:
            raise _Error(f"missing a value on flag: {name}")
        else:
            used[name] = used.get(name, []) + [value] if kind == _LIST else value
    return used


# -- instruction parsers: (node, flags used, escape token) -> Instruction ---------------

_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")


def _at_least_one(node: Node) -> tuple[str, ...]:
    if not node.args:
        raise _Error(f"{node.keyword.upper()} requires at least one argument")
    return node.args


def _command(node: Node) -> tuple[str, ...] | str:
    # BuildKit's handleJSONArgs: exec form as is, shell form as one string
    return node.args if node.json_form else " ".join(node.args)


def _from(node: Node, flags: _Flags, esc: str) -> From:
    args, name, written = node.args, None, None
    if len(args) == 3 and args[1].lower() == "as":
        written, name = args[2], args[2].lower()
        if not _STAGE_NAME.fullmatch(name):
            raise _Error(f"invalid name for build stage: {_q(written)}, name can't start with a number or contain symbols")
    elif len(args) != 1:
        raise _Error("FROM requires either one or three arguments")
    return From(node=node, image=args[0], name=name, name_as_written=written, platform=flags.str("platform"))


def _run(node: Node, flags: _Flags, esc: str) -> Run:
    if not node.args:
        raise _Error("RUN requires at least one argument")
    literal = _literal_expander(esc)
    mounts = tuple(parse_mount(spec, literal) for spec in flags.get("mount", []))
    network, security = flags.str("network"), flags.str("security")
    if network is not None and "$" not in network and network not in ("default", "none", "host"):
        raise _Error(f"unsupported network mode {_q(network)}")
    if security is not None and security not in ("sandbox", "insecure"):
        raise _Error(f"unsupported security mode {_q(security)}")
    return Run(node=node, cmd=_command(node), json_form=node.json_form, mounts=mounts,
               network=network, security=security, heredocs=node.heredocs)  # fmt: skip


def _transfer(node: Node, flags: _Flags, esc: str) -> Instruction:
    name = node.keyword.upper()
    if len(node.args) < 2:
        raise _Error(f"{name} requires at least two arguments, but only one was provided. "
                     "Destination could not be determined")  # fmt: skip
    *srcs, dest = node.args
    if parse_heredoc(dest) is not None:
        raise _Error(f"{name} cannot accept a heredoc as a destination")
    bodies = {h.name: h.body for h in node.heredocs}
    sources: list[str] = []
    inline: list[Heredoc] = []
    for src in srcs:
        doc = parse_heredoc(src)  # like BuildKit, even in JSON form (then the body is empty)
        if doc is None:
            sources.append(src)
        else:  # chomp is already applied to the body; expand comes from the word
            inline.append(Heredoc(doc.name, bodies.get(doc.name, ""), doc.expand, False, doc.fd))
    from_ = flags.str("from")
    if from_ is not None and re.search(r"\$.", from_):
        raise _Error("'from' doesn't support variable expansion, define alias stage instead")
    cls = Add if node.keyword == "add" else Copy
    return cls(node=node, sources=tuple(sources), dest=dest, json_form=node.json_form,
               chown=flags.str("chown"), chmod=flags.str("chmod"), link=flags.bool("link"),
               exclude=tuple(flags.get("exclude", [])), heredocs=tuple(inline), from_=from_,
               parents=flags.bool("parents"), checksum=flags.str("checksum"),
               keep_git_dir=flags.bool("keep-git-dir"), unpack=flags.get("unpack"))  # fmt: skip


def _pairs(node: Node, flags: _Flags, esc: str) -> Instruction:
    name, args = node.keyword.upper(), _at_least_one(node)
    if len(args) % 2:
        raise _Error(f"Bad input to {name}, too many arguments")
    pairs = tuple((args[i], args[i + 1]) for i in range(0, len(args), 2))
    if any(k == "" for k, _ in pairs):
        raise _Error(f"{name} names can not be blank")
    words = split_words(node.rest, esc)
    legacy = bool(words) and "=" not in words[0]  # `ENV k v` (LegacyKeyValueFormat)
    return (Env if name == "ENV" else Label)(node=node, pairs=pairs, legacy=legacy)


def _arg(node: Node, flags: _Flags, esc: str) -> Arg:
    out: list[tuple[str, str | None]] = []
    for word in _at_least_one(node):
        key, eq, value = word.partition("=")
        if eq and not key:
            raise _Error("ARG names can not be blank")
        out.append((key, value if eq else None))
    return Arg(node=node, args=tuple(out))


def _one(cls: type[Instruction], attr: str) -> Callable[[Node, _Flags, str], Instruction]:
    def parse(node: Node, flags: _Flags, esc: str) -> Instruction:
        if len(node.args) != 1:
            raise _Error(f"{node.keyword.upper()} requires exactly one argument")
        return cls(node=node, **{attr: node.args[0]})

    return parse


def _cmd(node: Node, flags: _Flags, esc: str) -> Instruction:
    cls = Cmd if node.keyword == "cmd" else Entrypoint
    return cls(node=node, cmd=_command(node), json_form=node.json_form)


def _expose(node: Node, flags: _Flags, esc: str) -> Expose:
    return Expose(node=node, ports=tuple(sorted(_at_least_one(node))))


def _volume(node: Node, flags: _Flags, esc: str) -> Volume:
    paths = tuple(p.strip() for p in _at_least_one(node))
    if "" in paths:
        raise _Error("VOLUME specified can not be an empty string")
    return Volume(node=node, paths=paths, json_form=node.json_form)


def _shell(node: Node, flags: _Flags, esc: str) -> Shell:
    if _at_least_one(node) and not node.json_form:
        raise _Error("SHELL requires the arguments to be in JSON form")
    return Shell(node=node, shell=node.args)


def _onbuild(node: Node, flags: _Flags, esc: str) -> Onbuild:
    trigger = _at_least_one(node)[0].strip().upper()
    if trigger == "ONBUILD":
        raise _Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise _Error(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", "", node.original, count=1)
    expression += "".join("\n" + h.content + h.name for h in node.heredocs)
    return Onbuild(node=node, trigger=trigger, expression=expression)


_DURATIONS = ("interval", "timeout", "start-period", "start-interval")


def _healthcheck(node: Node, flags: _Flags, esc: str) -> Healthcheck:
    kind, rest = _at_least_one(node)[0].upper(), node.args[1:]
    if kind == "NONE":
        if rest:
            raise _Error("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(node=node, test=("NONE",))
    if kind != "CMD":
        raise _Error(f"Unknown type {_q(kind)} in HEALTHCHECK (try CMD)")
    if not rest:
        raise _Error("Missing command after HEALTHCHECK CMD")
    times = {n.replace("-", "_"): parse_duration(flags.str(n) or "0") for n in _DURATIONS}
    for n, d in zip(_DURATIONS, times.values()):
        if d != 0 and d < 1_000_000:
            raise _Error(f"Interval {_q(n)} cannot be less than 1ms")
    retries = go_int(flags.str("retries") or "0")
    if retries < 0:
        raise _Error(f"--retries cannot be negative ({retries})")
    test = ("CMD", *rest) if node.json_form else ("CMD-SHELL", " ".join(rest))
    return Healthcheck(node=node, test=test, retries=retries, **times)


_COPY_FLAGS = {"chown": _STR, "chmod": _STR, "link": _BOOL, "exclude": _LIST}
_PARSERS: dict[str, tuple[dict[str, str], Callable[[Node, _Flags, str], Instruction]]] = {
    "from": ({"platform": _STR}, _from),
    "run": ({"mount": _LIST, "network": _STR, "security": _STR}, _run),
    "copy": ({**_COPY_FLAGS, "from": _STR, "parents": _BOOL}, _transfer),
    "add": ({**_COPY_FLAGS, "checksum": _STR, "keep-git-dir": _BOOL, "unpack": _BOOL}, _transfer),
    "env": ({}, _pairs), "label": ({}, _pairs), "arg": ({}, _arg), "cmd": ({}, _cmd), "entrypoint": ({}, _cmd),
    "workdir": ({}, _one(Workdir, "path")), "user": ({}, _one(User, "user")),
    "stopsignal": ({}, _one(StopSignal, "signal")), "maintainer": ({}, _one(Maintainer, "maintainer")),
    "expose": ({}, _expose), "volume": ({}, _volume), "shell": ({}, _shell), "onbuild": ({}, _onbuild),
    "healthcheck": (dict.fromkeys(_DURATIONS + ("retries",), _STR), _healthcheck),
}  # fmt: skip


_q = go_quote


def _literal_expander(esc: str) -> Callable[[str], str]:
    # Removes quotes and escapes but keeps $VARs: what can be checked before the build.
    lex = ShellLex(esc, skip_unset_env=True)
    return lambda value: lex.process_word(value, {})
