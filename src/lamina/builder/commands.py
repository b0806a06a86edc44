"""The Dockerfile instructions as typed values (BuildKit's `instructions/commands.go`).

Each is a frozen dataclass holding its source `node` (line range, original text) and
its fields *raw*: quotes, escapes and `$VAR`s are still in place (see instructions.py,
which makes them from parser nodes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .mountspec import Mount
from .parser import Heredoc, Node


@dataclass(frozen=True, kw_only=True)
class Instruction:
    node: Node = field(repr=False)

    @property
    def line(self) -> int:
        return self.node.start_line

    @property
    def original(self) -> str:
        return self.node.original


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    image: str
    name: str | None = None  # lowercased stage name
    name_as_written: str | None = None
    platform: str | None = None


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    cmd: tuple[str, ...] | str  # exec form: argv; shell form: the text for SHELL
    json_form: bool
    mounts: tuple[Mount, ...] = ()
    network: str | None = None
    security: str | None = None
    heredocs: tuple[Heredoc, ...] = ()  # bodies as written; use Heredoc.body


@dataclass(frozen=True, kw_only=True)
class _Transfer(Instruction):
    sources: tuple[str, ...]  # paths/URLs, heredoc sources excluded
    dest: str
    json_form: bool = False
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    exclude: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()  # inline sources: name is the file name, body the data
    from_: str | None = None  # COPY only
    parents: bool = False  # COPY only
    checksum: str | None = None  # ADD only
    keep_git_dir: bool = False  # ADD only
    unpack: bool | None = None  # ADD only; None = decide by source type


@dataclass(frozen=True, kw_only=True)
class Copy(_Transfer):
    pass


@dataclass(frozen=True, kw_only=True)
class Add(_Transfer):
    pass


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    pairs: tuple[tuple[str, str], ...]
    legacy: bool = False  # `ENV k v` form (LegacyKeyValueFormat lint)


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    pairs: tuple[tuple[str, str], ...]
    legacy: bool = False


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    args: tuple[tuple[str, str | None], ...]  # (name, raw default or None)


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    path: str


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    user: str


@dataclass(frozen=True, kw_only=True)
class _CommandLine(Instruction):
    cmd: tuple[str, ...] | str  # exec form: argv; shell form: the text for SHELL
    json_form: bool


@dataclass(frozen=True, kw_only=True)
class Cmd(_CommandLine):
    pass


@dataclass(frozen=True, kw_only=True)
class Entrypoint(_CommandLine):
    pass


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    ports: tuple[str, ...]  # raw words, sorted like BuildKit; expand each, then split


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    paths: tuple[str, ...]
    json_form: bool = False


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    signal: str


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    test: tuple[str, ...]  # ("NONE",) | ("CMD", *argv) | ("CMD-SHELL", text)
    interval: int = 0  # nanoseconds; 0 = unset (the runtime's default)
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    trigger: str  # the trigger keyword, uppercased
    expression: str  # the text stored in the image's OnBuild list (heredocs included)


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    maintainer: str


@dataclass(frozen=True)
class Stage:
    name: str | None  # lowercased `AS` name
    index: int
    base: str  # FROM's image, raw (may reference global ARGs or an earlier stage)
    platform: str | None
    commands: tuple[Instruction, ...]
    start_line: int
    from_: From
