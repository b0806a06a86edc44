"""Typed instructions and stages: validation, flags, mounts, healthcheck durations."""

from __future__ import annotations

import pytest

from lamina.builder.instructions import (
    EXPANDED_FLAGS, EXPANDS, Add, Arg, Cmd, Copy, Entrypoint, Env, Expose, From, Healthcheck, InstructionError,
    Label, Maintainer, Mount, Onbuild, Run, Shell, StopSignal, User, Volume, Workdir, parse_duration,
    parse_instruction, parse_mount, parse_stages,
)  # fmt: skip
from lamina.builder.parser import Heredoc, parse
from lamina.builder.shell import ShellLex
from lamina.errors import BuildError


def stages_of(text: str):
    return parse_stages(parse(text))


def one(line: str):
    """The single instruction of `FROM x` + line."""
    stages, _ = stages_of("FROM x\n" + line + "\n")
    (ins,) = stages[0].commands
    return ins


def error_of(text: str) -> str:
    with pytest.raises(BuildError) as info:
        stages_of(text)
    return str(info.value)


# -- stages -----------------------------------------------------------------------------


def test_stages_and_global_args():
    stages, global_args = stages_of(
        "ARG BASE=alpine\nARG V\nFROM --platform=$BUILDPLATFORM $BASE AS Build\nRUN make\n"
        "FROM build\nCOPY --from=build /out /out\nFROM scratch\n"
    )
    assert [a.args for a in global_args] == [(("BASE", "alpine"),), (("V", None),)]
    assert [(s.name, s.index, s.base, s.platform, s.start_line) for s in stages] == [
        ("build", 0, "$BASE", "$BUILDPLATFORM", 3),
        (None, 1, "build", None, 5),
        (None, 2, "scratch", None, 7),
    ]
    assert stages[0].from_.name_as_written == "Build"
    assert [type(c) for c in stages[0].commands] == [Run]
    assert [type(c) for c in stages[1].commands] == [Copy]
    assert stages[2].commands == ()


def test_args_after_first_from_belong_to_the_stage():
    stages, global_args = stages_of("FROM a\nARG X=1\n")
    assert global_args == [] and isinstance(stages[0].commands[0], Arg)


@pytest.mark.parametrize(
    "text,message",
    [
        ("RUN x\nFROM a\n", "Dockerfile:1: no build stage in current context"),
        ("ARG A\nENV B=1\nFROM a\n", "Dockerfile:2: no build stage in current context"),
        ("FROM a AS x\nFROM b AS X\n", 'Dockerfile:2: duplicate stage name "x"'),
        ("FROM a AS 1x\n", 'Dockerfile:1: invalid name for build stage: "1x", name can\'t start with a number or contain symbols'),
        ("FROM a AS b$c\n", 'Dockerfile:1: invalid name for build stage: "b$c", name can\'t start with a number or contain symbols'),
        ("FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a AS\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM --plat=x a\n", "Dockerfile:1: unknown flag: plat"),
    ],
)
def test_stage_errors(text, message):
    assert error_of(text) == message


def test_stage_name_rules():
    stages, _ = stages_of("FROM a AS my-stage_1.0\nFROM b as X\n")
    assert [s.name for s in stages] == ["my-stage_1.0", "x"]


# -- flags ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line,message",
    [
        ("COPY --user=me a b", "unknown flag: user"),
        ("COPY --chown a b", "missing a value on flag: chown"),
        ("COPY --link= a b", "missing a value on flag: link"),
        ("COPY --link=maybe a b", "expecting boolean value for flag link, not: maybe"),
        ("COPY --from=a --from=b a b", "duplicate flag specified: from"),
        ("ADD --from=a a b", "unknown flag: from"),
        ("COPY --checksum=sha256:x a b", "unknown flag: checksum"),
        ("RUN --device=/dev/x a", "unknown flag: device"),
        ("ENV --x=1 a=b", "unknown flag: x"),
        ("CMD --doit [\"a\"]", "unknown flag: doit"),
        ("WORKDIR --x=1 /a", "unknown flag: x"),
    ],
)
def test_flag_errors(line, message):
    assert error_of("FROM x\n" + line + "\n") == "Dockerfile:2: " + message


def test_bool_flags():
    assert one("COPY --link a b").link is True
    assert one("COPY --link=TRUE a b").link is True
    assert one("COPY --link=false a b").link is False
    assert one("COPY a b").link is False
    assert one("ADD --unpack=false a b").unpack is False
    assert one("ADD a b").unpack is None


# -- COPY / ADD -------------------------------------------------------------------------


def test_copy_fields():
    ins = one("COPY --from=build --chown=1:2 --chmod=0755 --link --parents --exclude=*.tmp --exclude=.git a b /dst/")
    assert isinstance(ins, Copy)
    assert (ins.sources, ins.dest, ins.from_, ins.chown, ins.chmod) == (("a", "b"), "/dst/", "build", "1:2", "0755")
    assert ins.link and ins.parents and ins.exclude == ("*.tmp", ".git")
    json_form = one('COPY ["a b", "/c d"]')
    assert json_form.json_form and json_form.sources == ("a b",) and json_form.dest == "/c d"


def test_add_fields():
    ins = one("ADD --checksum=sha256:abc --keep-git-dir --unpack https://x/y.tgz /z")
    assert isinstance(ins, Add)
    assert ins.checksum == "sha256:abc" and ins.keep_git_dir and ins.unpack is True
    assert ins.sources == ("https://x/y.tgz",) and ins.from_ is None


def test_copy_heredoc_sources():
    stages, _ = stages_of("FROM x\nCOPY a <<-EOF <<'RAW' /dst/\n\thello\n\tEOF\n$x\nRAW\n")
    (ins,) = stages[0].commands
    assert ins.sources == ("a",)
    assert ins.heredocs == (Heredoc("EOF", "hello\n", True, False, 0), Heredoc("RAW", "$x\n", False, False, 0))


@pytest.mark.parametrize(
    "line,message",
    [
        ("COPY a", "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("ADD a", "ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("COPY", "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("COPY a <<EOF", "COPY cannot accept a heredoc as a destination"),
        ("COPY --from=$STAGE a b", "'from' doesn't support variable expansion, define alias stage instead"),
    ],
)
def test_copy_errors(line, message):
    text = "FROM x\n" + line + "\n" + ("EOF\n" if "<<EOF" in line else "")
    assert error_of(text) == "Dockerfile:2: " + message


# -- RUN and mounts ---------------------------------------------------------------------


def test_run_forms():
    shell = one("RUN echo $HOME && ls")
    assert shell.cmd == "echo $HOME && ls" and not shell.json_form
    exec_form = one('RUN ["sh", "-c", "x"]')
    assert exec_form.cmd == ("sh", "-c", "x") and exec_form.json_form
    flags = one("RUN --network=none --security=insecure --mount=type=ssh --mount=type=tmpfs,target=/t,size=1m x")
    assert flags.network == "none" and flags.security == "insecure"
    assert [m.type for m in flags.mounts] == ["ssh", "tmpfs"]
    assert flags.mounts[1].size == 1024 * 1024 and not flags.mounts[1].readonly


def test_run_heredocs_kept_raw():
    stages, _ = stages_of("FROM x\nRUN <<-EOF\n\techo $A\n\tEOF\n")
    (run,) = stages[0].commands
    assert run.heredocs == (Heredoc("EOF", "\techo $A\n", True, True, 0),)
    assert run.heredocs[0].body == "echo $A\n" and run.cmd == "<<-EOF"


@pytest.mark.parametrize(
    "line,message",
    [
        ("RUN", "RUN requires at least one argument"),
        ("RUN []", "RUN requires at least one argument"),
        ("RUN --network=bridge x", 'unsupported network mode "bridge"'),
        ("RUN --security=root x", 'unsupported security mode "root"'),
        ("RUN --mount=type=nfs x", 'unsupported mount type "nfs"'),
    ],
)
def test_run_errors(line, message):
    assert error_of("FROM x\n" + line + "\n") == "Dockerfile:2: " + message


def test_run_network_with_variable_is_checked_later():
    assert one("RUN --network=$NET x").network == "$NET"


@pytest.mark.parametrize(
    "spec,fields",
    [
        ("target=/x", {"type": "bind", "target": "/x", "readonly": True}),
        ("type=bind,source=/a,target=/b,rw", {"source": "/a", "target": "/b", "readonly": False}),
        ("type=bind,src=/a,dst=/b,readwrite=true", {"source": "/a", "target": "/b", "readonly": False}),
        ("type=bind,from=build,destination=/b,ro=false", {"from_": "build", "readonly": False}),
        ("type=cache,target=/c", {"type": "cache", "readonly": False, "id": None}),
        ("type=cache,target=/c,id=x,sharing=LOCKED,mode=0700,uid=1000,gid=1000,ro",
         {"id": "x", "sharing": "locked", "mode": 0o700, "uid": 1000, "gid": 1000, "readonly": True}),
        ("type=tmpfs,target=/t,size=1.5g", {"type": "tmpfs", "size": int(1.5 * 1024**3), "readonly": False}),
        ("type=secret,id=aws", {"type": "secret", "id": "aws", "readonly": True, "required": False}),
        ("type=secret,id=tok,env=TOKEN,required", {"env": "TOKEN", "required": True}),
        ("type=secret,env=TOKEN", {"env": "TOKEN"}),
        ("type=ssh,required=true,mode=0600", {"type": "ssh", "required": True, "mode": 0o600}),
        ('"type=bind","target=/a,b"', {"target": "/a,b"}),
        ('type=bind,"target=/q""x"', {"target": '/q"x'}),
        ("TYPE=Cache,Target=/c", {"type": "cache", "target": "/c"}),
    ],
)  # fmt: skip
def test_parse_mount(spec, fields):
    mount = parse_mount(spec)
    assert isinstance(mount, Mount) and mount.spec == spec and not mount.deferred
    for name, value in fields.items():
        assert getattr(mount, name) == value, name


@pytest.mark.parametrize(
    "spec,message",
    [
        ("", "failed to parse csv mounts: EOF"),
        ('"target=/a', 'failed to parse csv mounts: extraneous or missing " in quoted-field'),
        ('"target=/a"b', 'failed to parse csv mounts: extraneous or missing " in quoted-field'),
        ('target="/a"', 'failed to parse csv mounts: bare " in non-quoted-field'),
        ('target=/a"b', 'failed to parse csv mounts: bare " in non-quoted-field'),
        ("target", "invalid field 'target' must be a key=value pair"),
        ("type=bind,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
        ("type=nfs", 'unsupported mount type "nfs"'),
        ("type=bind,required", "unexpected key 'required' for mount type 'bind'"),
        ("required,type=secret,id=a", "unexpected key 'required' for mount type 'bind'"),
        ("type=bind,target=/a,mode=0755", 'mode not allowed for "bind" type mounts'),
        ("type=tmpfs,target=/a,uid=1", 'uid not allowed for "tmpfs" type mounts'),
        ("type=bind,target=/a,sharing=shared", "invalid cache sharing set for bind mount"),
        ("type=cache,target=/a,sharing=weird", 'unsupported sharing value "weird"'),
        ("type=cache,target=/a,mode=9", "invalid value 9 for mode"),
        ("type=cache,target=/a,uid=-1", "invalid value -1 for uid"),
        ("type=bind,target=/a,ro=maybe", "invalid value for ro: maybe"),
        ("type=bind,target=/a,size=1m", "size is not allowed for bind"),
        ("type=tmpfs,target=/a,size=lots", "invalid size: 'lots'"),
        ("type=secret", "invalid secret mount. one of source, target required"),
        ("type=secret,id=a,from=b", "secret mount should not have a from"),
        ("type=secret,id=a,source=b", "both source and id can't be set"),
        ("type=bind,from=$STAGE,target=/a", "'from' doesn't support variable expansion, define alias stage instead"),
    ],
)
def test_parse_mount_errors(spec, message):
    with pytest.raises(InstructionError) as info:
        parse_mount(spec)
    assert str(info.value) == message
    assert str(info.value.at("Dockerfile", 4)) == "Dockerfile:4: " + message


def test_parse_mount_expansion_and_deferral():
    env = {"T": "/cache", "ID": "pip", "MODE": "0700"}
    lex = ShellLex()
    expanded = parse_mount("type=cache,target=$T,id=${ID},mode=$MODE", lambda v: lex.process_word(v, env))
    assert (expanded.target, expanded.id, expanded.mode, expanded.deferred) == ("/cache", "pip", 0o700, False)
    deferred = one("RUN --mount=type=$TYPE,target=/x,mode=$M x").mounts[0]
    assert deferred.deferred and deferred.target == "/x"
    quoted = one("RUN --mount=type=cache,target='/a b' x").mounts[0]
    assert quoted.target == "/a b"  # quotes are processed even before the build


# -- metadata instructions --------------------------------------------------------------


def test_env_and_label():
    env = one('ENV a=1 b="2 3" c=d\\ e')
    assert isinstance(env, Env) and env.pairs == (("a", "1"), ("b", '"2 3"'), ("c", "d\\ e")) and not env.legacy
    legacy = one("ENV PATH /usr/bin:$PATH  ")
    assert legacy.pairs == (("PATH", "/usr/bin:$PATH"),) and legacy.legacy
    label = one('LABEL "com.example.vendor"="ACME" version=1.0')
    assert isinstance(label, Label) and label.pairs == (('"com.example.vendor"', '"ACME"'), ("version", "1.0"))
    assert one("LABEL maintainer docker <a@b>").pairs == (("maintainer", "docker <a@b>"),)


@pytest.mark.parametrize(
    "line,message",
    [
        ("ENV", "ENV requires at least one argument"),
        ("ENV =x", "ENV names can not be blank"),
        ("LABEL", "LABEL requires at least one argument"),
        ("LABEL =x", "LABEL names can not be blank"),
        ("ARG", "ARG requires at least one argument"),
        ("ARG =x", "ARG names can not be blank"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("USER", "USER requires exactly one argument"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
        ("MAINTAINER", "MAINTAINER requires exactly one argument"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ('VOLUME ["/a", " "]', "VOLUME specified can not be an empty string"),
        ("SHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form"),
        ("SHELL []", "SHELL requires at least one argument"),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD from x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ],
)
def test_argument_errors(line, message):
    assert error_of("FROM x\n" + line + "\n") == "Dockerfile:2: " + message


def test_arg_list():
    ins = one('ARG a b=1 c="x y" d=')
    assert ins.args == (("a", None), ("b", "1"), ("c", '"x y"'), ("d", ""))


def test_single_value_instructions():
    assert one("WORKDIR /app dir") == Workdir(node=one("WORKDIR /app dir").node, path="/app dir")
    assert isinstance(one("USER app:app"), User) and one("USER app:app").user == "app:app"
    assert isinstance(one("STOPSIGNAL 9"), StopSignal) and one("STOPSIGNAL 9").signal == "9"
    assert isinstance(one("MAINTAINER a b"), Maintainer) and one("MAINTAINER a b").maintainer == "a b"


def test_cmd_entrypoint_expose_volume_shell():
    assert one('CMD ["a", "b"]').cmd == ("a", "b")
    assert one("CMD echo  hi").cmd == "echo  hi" and isinstance(one("CMD x"), Cmd)
    assert one("CMD").cmd == "" and one("CMD []").cmd == ()
    assert isinstance(one("ENTRYPOINT []"), Entrypoint) and one("ENTRYPOINT []").cmd == ()
    expose = one("EXPOSE 8080 80/udp 443")
    assert isinstance(expose, Expose) and expose.ports == ("443", "80/udp", "8080")
    volume = one('VOLUME [" /a ", "/b c"]')
    assert isinstance(volume, Volume) and volume.paths == ("/a", "/b c") and volume.json_form
    assert isinstance(one('SHELL ["bash", "-c"]'), Shell) and one('SHELL ["bash", "-c"]').shell == ("bash", "-c")


def test_onbuild():
    ins = one("  onbuild   RUN echo $X")
    assert isinstance(ins, Onbuild) and ins.trigger == "RUN" and ins.expression == "RUN echo $X"
    stages, _ = stages_of("FROM x\nONBUILD COPY <<EOF /a\nbody\nEOF\n")
    assert stages[0].commands[0].expression == "COPY <<EOF /a\nbody\nEOF"
    assert one("ONBUILD FROBNICATE x").trigger == "FROBNICATE"  # fails when it fires


# -- HEALTHCHECK ------------------------------------------------------------------------


def test_healthcheck():
    hc = one("HEALTHCHECK --interval=30s --timeout=1m --start-period=0 --start-interval=500ms --retries=3 CMD curl -f x")
    assert isinstance(hc, Healthcheck)
    assert hc.test == ("CMD-SHELL", "curl -f x")
    assert (hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries) == (
        30 * 10**9, 60 * 10**9, 0, 500 * 10**6, 3,
    )
    assert one('HEALTHCHECK CMD ["/bin/check", "-q"]').test == ("CMD", "/bin/check", "-q")
    assert one("HEALTHCHECK none").test == ("NONE",)
    assert one("HEALTHCHECK cmd true").test == ("CMD-SHELL", "true")


@pytest.mark.parametrize(
    "line,message",
    [
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK CONNECT TCP 7000", 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --interval=5 CMD x", 'time: missing unit in duration "5"'),
        ("HEALTHCHECK --interval=5x CMD x", 'time: unknown unit "x" in duration "5x"'),
        ("HEALTHCHECK --timeout=500us CMD x", 'Interval "timeout" cannot be less than 1ms'),
        ("HEALTHCHECK --timeout=-1s CMD x", 'Interval "timeout" cannot be less than 1ms'),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("HEALTHCHECK --grace=4s CMD x", "unknown flag: grace"),
    ],
)
def test_healthcheck_errors(line, message):
    assert error_of("FROM x\n" + line + "\n") == "Dockerfile:2: " + message


@pytest.mark.parametrize(
    "text,ns",
    [
        ("0", 0), ("-0", 0), ("1ns", 1), ("1.5s", 1_500_000_000), ("1h30m", 5_400 * 10**9), (".5m", 30 * 10**9),
        ("1.s", 10**9), ("300ms", 300 * 10**6), ("2µs", 2000), ("2μs", 2000), ("1us", 1000), ("-1.5h", -5_400 * 10**9),
        ("+2s", 2 * 10**9), ("9223372036854775807ns", 2**63 - 1), ("-9223372036854775808ns", -(2**63)),
        ("2562047h47m16.854775807s", 2**63 - 1), ("0.000000001s", 1), ("1.0000000001s", 10**9),
    ],
)  # fmt: skip
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", "x", "s", ".s", "-", "1x", "9223372036854775808ns", "1e3s", "1 s", "1.2.3s"])
def test_parse_duration_errors(text):
    with pytest.raises(InstructionError, match="^time: "):
        parse_duration(text)


# -- expansion contract -----------------------------------------------------------------


def test_expansion_contract():
    assert EXPANDS == {"add", "arg", "copy", "env", "expose", "from", "label", "stopsignal", "user", "volume", "workdir"}
    assert not EXPANDS & {"run", "cmd", "entrypoint", "shell", "healthcheck", "onbuild", "maintainer"}
    assert EXPANDED_FLAGS["copy"] == ("chown", "chmod") and "from" not in EXPANDED_FLAGS["copy"]
    # raw words are kept for the executor: quotes, escapes and variables untouched
    assert one('WORKDIR "$HOME/a b"').path == '"$HOME/a b"'


def test_parse_instruction_directly():
    node = parse("FROM a\nUSER bob\n").nodes[1]
    assert parse_instruction(node) == User(node=node, user="bob")
    assert isinstance(parse_instruction(parse("FROM a\n").nodes[0]), From)
    with pytest.raises(BuildError, match="^x.df:1: unknown flag: q$"):
        parse_instruction(parse("USER --q=1 a\n").nodes[0], filename="x.df")
