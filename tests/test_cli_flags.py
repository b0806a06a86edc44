"""The command line parsed as docker's CLI (pflag/cobra) parses it: values, the
flags after run's image, and docker 20.10's error texts and exit codes.

The expected texts were recorded from Debian's docker 20.10 client
(`/usr/bin/docker VERB ... 2>&1; echo $?`, `docker` replaced by `lamina`);
`test_refusals_match_docker` compares them live where that client is present.
Every case here is refused (or answered) before a store is opened."""

from __future__ import annotations

import os
import subprocess

import pytest

from lamina.cli import flags
from lamina.cli.main import build_parser, main


def parse(*argv: str):
    """The parsed namespace of `lamina ARGV...`."""
    return build_parser(argv[0]).parse(list(argv))


def refused(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    assert cap.out == ""
    return code, cap.err


# -- values -------------------------------------------------------------------------

def test_run_flags_stop_at_the_image():
    a = parse("run", "--rm", "-it", "img", "echo", "--rm", "-x", "--", "y")
    assert (a.rm, a.interactive, a.tty, a.image, a.command) == (True, True, True, "img", ["echo", "--rm", "-x", "--", "y"])
    a = parse("create", "--name", "c", "img", "-e", "X=1")
    assert a.env == [] and a.command == ["-e", "X=1"] and a.name == "c"


def test_a_value_flag_takes_the_next_argument_even_with_a_dash():
    assert parse("run", "--name", "-lead", "img").name == "-lead"
    assert parse("run", "-w", "--rm", "img").workdir == "--rm"  # pflag: the next word is the value


def test_short_flags_combine_and_take_attached_values():
    a = parse("run", "-itd", "-eFOO=bar", "-e=X=1", "-e", "Y", "--env=Z=2", "-uroot", "img")
    assert (a.interactive, a.tty, a.detach) == (True, True, True)
    assert a.env == ["FOO=bar", "X=1", "Y", "Z=2"] and a.user == "root"
    a = parse("ps", "-aq")
    assert a.all and a.quiet and not a.no_trunc


def test_bools_take_explicit_values():
    assert parse("run", "--rm=false", "img").rm is False
    assert parse("ps", "-a=false").all is False
    assert parse("ps", "--all=TRUE", "--no-trunc=1").all is True
    assert parse("commit", "-p=false", "c").pause is False  # default true, as docker's


def test_other_verbs_take_flags_anywhere_and_dash_dash_ends_them():
    a = parse("rm", "c1", "-f", "c2")
    assert a.force and a.containers == ["c1", "c2"]
    a = parse("rmi", "--", "-f")
    assert not a.force and a.images == ["-f"]
    a = parse("images", "busybox", "-q")
    assert a.quiet and a.repository == "busybox"
    a = parse("build", "-t", "a", "--tag=b", ".", "--build-arg", "K=V", "-q")
    assert a.tag == ["a", "b"] and a.build_arg == ["K=V"] and a.path == "." and a.quiet


def test_global_flags_come_before_the_verb():
    a = parse("--root", "/r", "--storage-driver=copy", "ps")
    assert a.root == "/r" and a.storage_driver == "copy" and a.verb == "ps"
    assert build_parser("ps").parse(["--root=/x", "ps", "-a"]).all


def test_attribute_names_are_argparse_s():
    a = parse("run", "img")
    for name in ("interactive", "tty", "rm", "name", "env", "env_file", "workdir", "user", "entrypoint", "volume",
                 "hostname", "network", "label", "pull", "platform", "security_opt", "detach", "image", "command"):
        assert hasattr(a, name), name
    assert a.network == "default" and a.pull == "missing" and a.env == [] and a.command == []
    a = parse("system", "check", "--quick")
    assert a.system_command == "check" and a.quick and a.func.__name__ == "cmd_check"
    assert parse("login").server is None


# -- refusals: docker 20.10's text and exit code ------------------------------------------

RECORDED = [
    (["run", "--xyz"], 125, "unknown flag: --xyz\nSee 'lamina run --help'.\n"),
    (["ps", "--xyz"], 125, "unknown flag: --xyz\nSee 'lamina ps --help'.\n"),
    (["images", "--xyz"], 125, "unknown flag: --xyz\nSee 'lamina images --help'.\n"),
    (["inspect", "--xyz"], 125, "unknown flag: --xyz\nSee 'lamina inspect --help'.\n"),
    (["rm", "--xyz"], 125, "unknown flag: --xyz\nSee 'lamina rm --help'.\n"),
    (["ps", "-ax"], 125, "unknown shorthand flag: 'x' in -x\nSee 'lamina ps --help'.\n"),
    (["run", "--name"], 125, "flag needs an argument: --name\nSee 'lamina run --help'.\n"),
    (["ps", "--format"], 125, "flag needs an argument: --format\nSee 'lamina ps --help'.\n"),
    (["ps", "--all=maybe"], 125, 'invalid argument "maybe" for "-a, --all" flag: strconv.ParseBool: '
                                 'parsing "maybe": invalid syntax\nSee \'lamina ps --help\'.\n'),
    (["run", "-e", "=novar", "busybox"], 125, 'invalid argument "=novar" for "-e, --env" flag: '
                                             "invalid environment variable: =novar\nSee 'lamina run --help'.\n"),
    (["run", "-e", "", "busybox"], 125, 'invalid argument "" for "-e, --env" flag: '
                                       "invalid environment variable: \nSee 'lamina run --help'.\n"),
    (["run"], 1, "\"lamina run\" requires at least 1 argument.\nSee 'lamina run --help'.\n\n"
                 "Usage:  lamina run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun a command in a new container\n"),
    (["run", "--rm=false"], 1, "\"lamina run\" requires at least 1 argument.\nSee 'lamina run --help'.\n\n"
                               "Usage:  lamina run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
                               "Run a command in a new container\n"),
    (["ps", "x"], 1, "\"lamina ps\" accepts no arguments.\nSee 'lamina ps --help'.\n\n"
                     "Usage:  lamina ps [OPTIONS]\n\nList containers\n"),
    (["images", "a", "b"], 1, "\"lamina images\" requires at most 1 argument.\nSee 'lamina images --help'.\n\n"
                              "Usage:  lamina images [OPTIONS] [REPOSITORY[:TAG]]\n\nList images\n"),
    (["diff"], 1, "\"lamina diff\" requires exactly 1 argument.\nSee 'lamina diff --help'.\n\n"
                  "Usage:  lamina diff CONTAINER\n\n"
                  "Inspect changes to files or directories on a container's filesystem\n"),
    (["rm"], 1, "\"lamina rm\" requires at least 1 argument.\nSee 'lamina rm --help'.\n\n"
                "Usage:  lamina rm [OPTIONS] CONTAINER [CONTAINER...]\n\nRemove one or more containers\n"),
    (["tag", "a"], 1, "\"lamina tag\" requires exactly 2 arguments.\nSee 'lamina tag --help'.\n\n"
                      "Usage:  lamina tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]\n\n"
                      "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE\n"),
    (["build"], 1, "\"lamina build\" requires exactly 1 argument.\nSee 'lamina build --help'.\n\n"
                   "Usage:  lamina build [OPTIONS] PATH | URL | -\n\nBuild an image from a Dockerfile\n"),
    (["history"], 1, "\"lamina history\" requires exactly 1 argument.\nSee 'lamina history --help'.\n\n"
                     "Usage:  lamina history [OPTIONS] IMAGE\n\nShow the history of an image\n"),
    (["ps", "-a="], 125, "unknown shorthand flag: '=' in -=\nSee 'lamina ps --help'.\n"),
    (["run", "-e=", "busybox"], 125, 'invalid argument "=" for "-e, --env" flag: '
                                    "invalid environment variable: =\nSee 'lamina run --help'.\n"),
    (["import"], 1, "\"lamina import\" requires at least 1 argument.\nSee 'lamina import --help'.\n\n"
                    "Usage:  lamina import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]\n\n"
                    "Import the contents from a tarball to create a filesystem image\n"),
    (["pull", "a", "b"], 1, "\"lamina pull\" requires exactly 1 argument.\nSee 'lamina pull --help'.\n\n"
                            "Usage:  lamina pull [OPTIONS] NAME[:TAG|@DIGEST]\n\n"
                            "Pull an image or a repository from a registry\n"),
    (["logout", "a", "b"], 1, "\"lamina logout\" requires at most 1 argument.\nSee 'lamina logout --help'.\n\n"
                              "Usage:  lamina logout [SERVER]\n\nLog out from a Docker registry\n"),
    (["load", "x"], 1, "\"lamina load\" accepts no arguments.\nSee 'lamina load --help'.\n\n"
                       "Usage:  lamina load [OPTIONS]\n\nLoad an image from a tar archive or STDIN\n"),
]


@pytest.mark.parametrize("argv,code,err", RECORDED, ids=[" ".join(r[0]) or "-" for r in RECORDED])
def test_refusals_are_docker_s(capsys, argv, code, err):
    assert refused(capsys, *argv) == (code, err)


def test_commit_takes_one_or_two_arguments(capsys):
    code, err = refused(capsys, "commit")
    assert code == 1 and err.startswith('"lamina commit" requires at least 1 and at most 2 arguments.\n')


def test_unknown_verb(capsys):
    assert refused(capsys, "frobnicate") == (1, "lamina: 'frobnicate' is not a lamina command.\nSee 'lamina --help'\n")


def test_help_is_a_usage_text(capsys):
    assert main(["ps", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\nUsage:  lamina ps [OPTIONS]\n\nList containers\n\nOptions:\n")
    assert "  -a, --all " in out and "      --format string " in out
    assert main(["ps", "-h"]) == 0  # cobra's -h, since ps has no -h flag of its own
    assert capsys.readouterr().out == out
    # run's -h is --hostname, as docker's: it needs a value
    assert refused(capsys, "run", "-h") == (125, "flag needs an argument: 'h' in -h\nSee 'lamina run --help'.\n")
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:  lamina run [OPTIONS] IMAGE [COMMAND] [ARG...]" in out and "  -d, --detach " in out


def test_parser_refuses_before_touching_a_store(tmp_path, capsys):
    root = tmp_path / "store"
    assert main(["--root", str(root), "run", "-e", "=x", "img"]) == 125
    assert main(["--root", str(root), "ps", "--bogus"]) == 125
    assert not root.exists()


# -- live comparison -------------------------------------------------------------------

DOCKER = "/usr/bin/docker"  # Debian's 20.10 client: the one the recorded texts come from


def _docker_20() -> bool:
    if not os.access(DOCKER, os.X_OK):
        return False
    p = subprocess.run([DOCKER, "--version"], capture_output=True, text=True)
    return p.returncode == 0 and " 20.10." in p.stdout


@pytest.mark.docker
@pytest.mark.skipif(not _docker_20(), reason="needs Debian's docker 20.10 client at /usr/bin/docker")
@pytest.mark.parametrize("argv", [r[0] for r in RECORDED] + [["commit"], ["ps", "-q", "--no-trunc=x"]])
def test_refusals_match_docker(capsys, argv):
    d = subprocess.run([DOCKER, *argv], capture_output=True, text=True, timeout=60)
    assert refused(capsys, *argv) == (d.returncode, d.stderr.replace("docker", "lamina"))


def test_valid_env_is_docker_s():
    assert flags.valid_env("A=1") is None and flags.valid_env("A") is None and flags.valid_env("A=") is None
    assert flags.valid_env("=1") == "invalid environment variable: =1"


@pytest.mark.parametrize("verb", sorted(build_parser(None).subcommands))
def test_every_verb_has_docker_shaped_help(capsys, verb):
    assert main([verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"\nUsage:  lamina {verb}") and "\n\n" in out
