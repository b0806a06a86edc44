"""What the metadata instructions do to an image's container config, and how
the classic builder records them in history.

The functions take values that are already expanded (the executor owns scope
and substitution) and change the docker-shaped `config` dict in place.  The same
functions serve `commit -c` / `import -c` through `apply_change_lines`, which the
engine hands to imageops (below the builder) as `change_editor(lines)`.

History text follows moby's classic builder (`internals.go` withCmdComment*):
`/bin/sh -c #(nop)  ENV A=1` (two spaces) for metadata, Go's `%q` / `%v`
renderings of lists, and `#(nop) WORKDIR /x` (one space) for WORKDIR.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from lamina.errors import BuildError
from lamina.oci import DEFAULT_PATH
from lamina.builder.gotext import go_duration, go_list, go_quote_list, go_quote_rune
from lamina.quoting import go_quote

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH_ENV = "PATH=" + DEFAULT_PATH


def nop(shell: Sequence[str], text: str) -> str:
    """created_by of a metadata step: `<shell> #(nop)  <text>` (two spaces, as moby's
    withCmdComment joins `#(nop) ` and the text with a space)."""
    return " ".join([*shell, "#(nop) ", text])


def nop1(shell: Sequence[str], text: str) -> str:
    """created_by of WORKDIR/COPY/ADD: `<shell> #(nop) <text>` (withCmdCommentString)."""
    return " ".join([*shell, "#(nop) " + text])


def shell_of(cfg: Mapping) -> tuple[str, ...]:
    return tuple(cfg.get("Shell") or DEFAULT_SHELL)


# --------------------------------------------------------------------- config effects


def set_env(cfg: dict, pairs: Sequence[tuple[str, str]]) -> str:
    """ENV: an existing key is replaced in place, a new one appended."""
    env = list(cfg.get("Env") or [])
    index = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
    for key, value in pairs:
        item = f"{key}={value}"
        if key in index:
            env[index[key]] = item
        else:
            index[key] = len(env)
            env.append(item)
    cfg["Env"] = env
    return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)


def env_map(cfg: Mapping) -> dict[str, str]:
    out = {}
    for item in cfg.get("Env") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def set_labels(cfg: dict, pairs: Sequence[tuple[str, str]]) -> str:
    labels = dict(cfg.get("Labels") or {})
    for key, value in pairs:
        labels[key] = value
    cfg["Labels"] = labels
    return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)


def command_list(cfg: Mapping, cmd: Sequence[str] | str) -> list[str]:
    """Exec form as is; shell form becomes the current SHELL + [text]."""
    if isinstance(cmd, str):
        return [*shell_of(cfg), cmd]
    return list(cmd)


def set_cmd(cfg: dict, cmd: Sequence[str] | str) -> str:
    args = command_list(cfg, cmd)
    cfg["Cmd"] = args
    return "CMD " + go_quote_list(args)


def set_entrypoint(cfg: dict, cmd: Sequence[str] | str, *, cmd_set_in_stage: bool) -> str:
    """ENTRYPOINT; an inherited CMD is dropped unless this stage set one (moby/BuildKit)."""
    args = command_list(cfg, cmd)
    cfg["Entrypoint"] = args or None
    if not cmd_set_in_stage:
        cfg["Cmd"] = None
    return "ENTRYPOINT " + go_quote_list(args)


_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")


def expose_ports(words: Sequence[str]) -> list[str]:
    """`80`, `80/udp`, `8000-8010/tcp` -> ["80/tcp", ...] (nat.ParsePortSpecs)."""
    out = []
    for word in words:
        spec = word.rsplit(":", 1)[-1] if word.count(":") else word  # ip:host:ctr -> ctr
        m = _PORT.match(spec)
        if not m:
            raise BuildError(f"invalid containerPort: {word}")
        lo = int(m[1])
        hi = int(m[2]) if m[2] else lo
        proto = (m[3] or "tcp").lower()
        if hi < lo or hi > 65535:
            raise BuildError(f"invalid port range: {word}")
        out += [f"{p}/{proto}" for p in range(lo, hi + 1)]
    return out


def add_exposed(cfg: dict, words: Sequence[str]) -> str:
    ports = dict(cfg.get("ExposedPorts") or {})
    for port in expose_ports(words):
        ports[port] = {}
    cfg["ExposedPorts"] = ports
    return "EXPOSE " + " ".join(words)


def add_volumes(cfg: dict, paths: Sequence[str]) -> str:
    volumes = dict(cfg.get("Volumes") or {})
    for path in paths:
        if not path.strip():
            raise BuildError("VOLUME specified can not be an empty string")
        volumes[path] = {}
    cfg["Volumes"] = volumes
    return "VOLUME " + go_list(paths)


def set_user(cfg: dict, user: str) -> str:
    cfg["User"] = user
    return "USER " + user


def join_workdir(current: str, path: str) -> str:
    """A relative WORKDIR joins the previous one; the result is cleaned."""
    import posixpath

    if not path.startswith("/"):
        path = posixpath.join(current or "/", path)
    clean = posixpath.normpath(path)
    return "/" + clean.lstrip("/") if clean != "/" else "/"


def set_workdir(cfg: dict, path: str) -> str:
    cfg["WorkingDir"] = join_workdir(cfg.get("WorkingDir") or "/", path)
    return "WORKDIR " + cfg["WorkingDir"]


def set_shell(cfg: dict, shell: Sequence[str]) -> str:
    cfg["Shell"] = list(shell)
    return "SHELL " + go_list(shell)


_SIGNAL = re.compile(r"^(SIG)?[A-Z0-9+-]+$|^\d+$")


def set_stopsignal(cfg: dict, signal: str) -> str:
    if not _SIGNAL.match(signal.upper()):
        raise BuildError(f"Invalid signal: {signal}")
    cfg["StopSignal"] = signal
    return "STOPSIGNAL " + signal


def set_healthcheck(cfg: dict, test: Sequence[str], *, interval: int = 0, timeout: int = 0,
                    start_period: int = 0, start_interval: int = 0, retries: int = 0) -> str:
    health: dict = {"Test": list(test)}
    # Docker's HealthConfig fields are omitempty: unset (0) values are not written.
    for key, value in (("Interval", interval), ("Timeout", timeout), ("StartPeriod", start_period),
                       ("StartInterval", start_interval), ("Retries", retries)):
        if value:
            health[key] = value
    cfg["Healthcheck"] = health
    # moby: fmt.Sprintf("HEALTHCHECK %q", &HealthConfig{...}) (no StartInterval in 20.10)
    rendered = " ".join([go_quote_list(test), go_quote(go_duration(interval)), go_quote(go_duration(timeout)),
                         go_quote(go_duration(start_period)), go_quote_rune(retries)])
    return "HEALTHCHECK &{" + rendered + "}"


def add_onbuild(cfg: dict, expression: str) -> str:
    cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [expression]
    return "ONBUILD " + expression


# --------------------------------------------------------------------- commit/import -c

_CHANGE_COMMANDS = ("cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild",
                    "stopsignal", "user", "volume", "workdir")


def apply_change_lines(config: dict, changes: Sequence[str]) -> None:
    """`docker commit/import --change 'ENV A=1'`: each line one instruction, expanded
    with the image's own Env, applied to config["config"]."""
    from lamina.builder.instructions import parse_instruction
    from lamina.builder.parser import parse
    from lamina.builder.shell import ShellLex

    cfg = config.setdefault("config", {})
    lex = ShellLex("\\")
    for line in changes:
        result = parse(line + "\n", "change")
        for node in result.nodes:
            if node.keyword not in _CHANGE_COMMANDS:
                raise BuildError(f"{node.keyword.upper()} is not a valid change command")
            ins = parse_instruction(node, filename="change")
            env = env_map(cfg)
            apply_metadata(cfg, ins, lambda w: lex.process_word(w, env), cmd_set=False,
                           words=lambda w: lex.process_words(w, env))


def change_editor(changes: Sequence[str]):
    """`apply_change_lines` for these lines as one `edit(config)` (what imageops takes
    for commit/import: it sits below the builder and cannot import it); None if none."""
    lines = list(changes)
    if not lines:
        return None
    return lambda config: apply_change_lines(config, lines)


def apply_metadata(cfg: dict, ins, expand, *, cmd_set: bool, words=None) -> str:
    """Apply one metadata instruction (already parsed) with `expand(word) -> str`;
    returns the classic history text (without the `#(nop)` prefix)."""
    from lamina.builder import instructions as I

    if isinstance(ins, I.Env):
        return set_env(cfg, [(expand(k), expand(v)) for k, v in ins.pairs])
    if isinstance(ins, I.Label):
        return set_labels(cfg, [(expand(k), expand(v)) for k, v in ins.pairs])
    if isinstance(ins, I.Cmd):
        return set_cmd(cfg, ins.cmd)
    if isinstance(ins, I.Entrypoint):
        return set_entrypoint(cfg, ins.cmd, cmd_set_in_stage=cmd_set)
    if isinstance(ins, I.Expose):
        split = words or (lambda w: expand(w).split())
        return add_exposed(cfg, [p for w in ins.ports for p in split(w)])
    if isinstance(ins, I.Volume):
        return add_volumes(cfg, [expand(p) for p in ins.paths])
    if isinstance(ins, I.User):
        return set_user(cfg, expand(ins.user))
    if isinstance(ins, I.Workdir):
        return set_workdir(cfg, expand(ins.path))
    if isinstance(ins, I.Shell):
        return set_shell(cfg, ins.shell)
    if isinstance(ins, I.StopSignal):
        return set_stopsignal(cfg, expand(ins.signal))
    if isinstance(ins, I.Healthcheck):
        return set_healthcheck(cfg, ins.test, interval=ins.interval, timeout=ins.timeout,
                               start_period=ins.start_period, start_interval=ins.start_interval,
                               retries=ins.retries)
    if isinstance(ins, I.Onbuild):
        return add_onbuild(cfg, ins.expression)
    raise BuildError(f"{ins.node.keyword.upper()} is not a metadata instruction")
