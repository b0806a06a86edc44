"""Multi-stage planning: global ARGs, what each stage depends on, which to build.

Done before any step runs, so a bad `--from`, a cycle, an unknown `--target` or
an undefined ARG in FROM fails with file:line before a container starts.
Like BuildKit, only the stages the target reaches (through FROM, `COPY --from`
and `RUN --mount from=`) are built, in Dockerfile order.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina.builder import instructions as I
from lamina.builder.shell import ShellError, ShellLex
from lamina.errors import BuildError

# Predefined args: usable without an ARG line, kept out of history and cache keys.
PROXY_ARGS = frozenset(
    name for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)


def platform_args(target=None) -> dict[str, str]:
    """BuildKit's automatic platform ARGs (global scope): BUILD* the host's, TARGET*
    `target`'s (a transfer.platforms.Platform, --platform's) or the host's."""
    from lamina.transfer.platforms import host_platform

    out = {}
    for prefix, plat in (("BUILD", host_platform()), ("TARGET", target or host_platform())):
        out.update({f"{prefix}PLATFORM": str(plat), f"{prefix}OS": plat.os, f"{prefix}ARCH": plat.architecture,
                    f"{prefix}VARIANT": plat.variant})
    return out


@dataclass(frozen=True)
class StageRef:
    """What a `--from` / FROM names: a stage index, or an image reference."""

    stage: int | None
    image: str | None


@dataclass(frozen=True)
class Plan:
    stages: tuple[I.Stage, ...]
    bases: tuple[StageRef, ...]              # per stage: its FROM, expanded
    deps: tuple[frozenset[int], ...]         # per stage: stages it needs
    order: tuple[int, ...]                   # stages to build, in order
    target: int
    global_args: dict[str, str | None]       # declared global ARGs (value or None)
    global_lines: tuple[I.Arg, ...]


def global_scope(global_args: list[I.Arg], build_args: dict[str, str], lex: ShellLex,
                 filename: str, platform=None) -> dict[str, str | None]:
    """Values of the ARGs before the first FROM: --build-arg, else the default
    (expanded with the globals before it)."""
    scope: dict[str, str | None] = {}
    auto = platform_args(platform)
    for arg in global_args:
        for name, default in arg.args:
            if name in build_args:
                scope[name] = build_args[name]
            elif default is not None:
                env = {**auto, **{k: v for k, v in scope.items() if v is not None}}
                try:
                    scope[name] = lex.process_word(default, env)
                except ShellError as e:
                    raise e.at(filename, arg.line) from None
            else:
                scope[name] = auto.get(name)
    return scope


def resolve_ref(name: str, stages: list[I.Stage], *, allow_index: bool, before: int | None) -> StageRef:
    lowered = name.lower()
    for st in stages:
        if st.name == lowered and (before is None or st.index < before):
            return StageRef(st.index, None)
    if allow_index and name.isdigit():
        i = int(name)
        if i < len(stages):
            return StageRef(i, None)
    return StageRef(None, name)


def plan(stages: list[I.Stage], global_args: list[I.Arg], build_args: dict[str, str],
         target: str | None, lex: ShellLex, filename: str, platform=None) -> Plan:
    if not stages:
        raise BuildError(f"{filename}: file with no instructions")
    scope = global_scope(global_args, build_args, lex, filename, platform)
    env = {**platform_args(platform), **{k: v for k, v in scope.items() if v is not None}}
    bases: list[StageRef] = []
    deps: list[set[int]] = []
    for st in stages:
        try:
            expansion = lex.expand(st.base, env)
        except ShellError as e:
            raise e.at(filename, st.start_line) from None
        image = expansion.result
        if not image:
            undefined = ", ".join(sorted(expansion.unmatched)) or st.base
            raise BuildError(f"{filename}:{st.start_line}: base name ({st.base}) should not be blank"
                             + (f" (undefined ARG: {undefined})" if expansion.unmatched else ""))
        ref = resolve_ref(image, stages, allow_index=False, before=st.index)
        bases.append(ref)
        need: set[int] = set()
        if ref.stage is not None:
            need.add(ref.stage)
        for cmd in st.commands:
            for src in _from_names(cmd):
                r = resolve_ref(src, stages, allow_index=True, before=None)
                if r.stage is not None:
                    if r.stage == st.index:
                        raise BuildError(f"{filename}:{cmd.line}: circular dependency detected on stage: "
                                         f"{st.name or st.index}")
                    need.add(r.stage)
        deps.append(need)
    if target is None:
        tgt = len(stages) - 1
    else:
        found = [s.index for s in stages if s.name == target.lower()]
        if not found:
            raise BuildError(f"failed to reach build target {target} in Dockerfile")
        tgt = found[0]
    _check_cycles(stages, deps, filename)
    needed: set[int] = set()
    todo = [tgt]
    while todo:
        i = todo.pop()
        if i not in needed:
            needed.add(i)
            todo.extend(deps[i])
    return Plan(tuple(stages), tuple(bases), tuple(frozenset(d) for d in deps), tuple(sorted(needed)),
                tgt, scope, tuple(global_args))


def _from_names(cmd: I.Instruction) -> list[str]:
    if isinstance(cmd, (I.Copy,)) and cmd.from_:
        return [cmd.from_]
    if isinstance(cmd, I.Run):
        return [m.from_ for m in cmd.mounts if m.from_]
    return []


def _check_cycles(stages: list[I.Stage], deps: list[set[int]], filename: str) -> None:
    state = [0] * len(stages)  # 0 new, 1 on the stack, 2 done

    def visit(i: int) -> None:
        state[i] = 1
        for j in sorted(deps[i]):
            if state[j] == 1:
                st = stages[j]
                raise BuildError(f"{filename}:{st.start_line}: circular dependency detected on stage: "
                                 f"{st.name or st.index}")
            if state[j] == 0:
                visit(j)
        state[i] = 2

    for i in range(len(stages)):
        if state[i] == 0:
            visit(i)

