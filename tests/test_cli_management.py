"""docker's management-command forms (issue 12): `container ls|ps|list`, `container rm`,
`image ls|list`, `image rm|rmi|remove`, `container inspect`, `image inspect`, ... run the
top-level verbs under docker 20.10's names (cli/commands/management.py), with its
help, aliases and error lines; `network list|remove` and `volume list|remove` are
cobra's aliases.  docker's own texts are read from /usr/bin/docker where it is installed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import requires_root

pytestmark = requires_root

LAMINA = [sys.executable, "-m", "lamina"]
DOCKER = "/usr/bin/docker"


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar):
    root = tmp_path_factory.mktemp("management") / "store"
    for args in (("import", str(busybox_tar), "mg:1"), ("tag", "mg:1", "mg:2"),
                 ("create", "--name", "mg-a", "-l", "k=v", "mg:1", "true"), ("create", "--name", "mg-b", "mg:1", "sh")):
        p = run(root, *args)
        assert p.returncode == 0, p.stderr
    return root


def run(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LAMINA, "--root", str(root), *args], capture_output=True, text=True, timeout=120)


def same(root, a: tuple, b: tuple) -> None:
    p, q = run(root, *a), run(root, *b)
    assert (p.returncode, p.stdout, p.stderr) == (q.returncode, q.stdout, q.stderr), (a, b)
    assert p.returncode == 0, p.stderr


def test_the_forms_run_the_top_level_verbs(root):
    for form in (("container", "ls"), ("container", "ps"), ("container", "list")):
        same(root, (*form, "-a", "--format", "{{.Names}} {{.Labels}}"), ("ps", "-a", "--format",
                                                                        "{{.Names}} {{.Labels}}"))
        same(root, (*form, "-n", "1", "-q", "--no-trunc"), ("ps", "-l", "-q", "--no-trunc"))
    for form in (("image", "ls"), ("image", "list")):
        same(root, (*form, "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"),
             ("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"))
    same(root, ("container", "inspect", "-f", "{{.Name}} {{.Config.Labels}}", "mg-a"),
         ("inspect", "-f", "{{.Name}} {{.Config.Labels}}", "mg-a"))
    same(root, ("image", "inspect", "-f", "{{.Id}}", "mg:1"), ("inspect", "-f", "{{.Id}}", "mg:1"))
    same(root, ("container", "diff", "mg-a"), ("diff", "mg-a"))
    same(root, ("image", "history", "-q", "mg:1"), ("history", "-q", "mg:1"))
    p = run(root, "container", "inspect", "-s", "-f", "{{.SizeRw}} {{gt .SizeRootFs 1000000}}", "mg-a")
    assert (p.returncode, p.stdout) == (0, "0 true\n"), p.stderr
    for form in ("rm", "rmi", "remove"):
        assert run(root, "tag", "mg:1", "mg:gone").returncode == 0
        p = run(root, "image", form, "mg:gone")
        assert (p.returncode, p.stdout) == (0, "Untagged: mg:gone\n"), p.stderr
    p = run(root, "container", "rm", "mg-b")
    assert (p.returncode, p.stdout) == (0, "mg-b\n"), p.stderr


def test_inspect_forms_look_at_their_own_kind(root):
    p = run(root, "container", "inspect", "mg:1")
    assert (p.returncode, p.stdout, p.stderr) == (1, "[]\n", "Error: No such container: mg:1\n")
    p = run(root, "image", "inspect", "mg-a")
    assert (p.returncode, p.stdout, p.stderr) == (1, "[]\n", "Error: No such image: mg-a\n")
    p = run(root, "image", "inspect", "--type", "container", "mg-a")
    assert (p.returncode, p.stderr) == (125, "unknown flag: --type\nSee 'lamina image inspect --help'.\n")


def test_errors_and_verbs_name_the_long_form(root):
    p = run(root, "container", "ls", "--bogus")
    assert (p.returncode, p.stderr) == (125, "unknown flag: --bogus\nSee 'lamina container ls --help'.\n")
    p = run(root, "container", "list", "-x")
    assert (p.returncode, p.stderr) == (125, "unknown shorthand flag: 'x' in -x\nSee 'lamina container ls --help'.\n")
    p = run(root, "image", "remove")
    assert p.returncode == 1
    assert p.stderr.startswith('"lamina image rm" requires at least 1 argument.\nSee \'lamina image rm --help\'.\n\n'
                               "Usage:  lamina image rm [OPTIONS] IMAGE [IMAGE...]\n")
    cid = run(root, "inspect", "-f", "{{.Id}}", "mg-a").stdout.strip()
    p = run(root, "container", "pause", "mg-a")  # pause, not unpause (they share one function)
    assert (p.returncode, p.stderr) == (1, f"Error response from daemon: Container {cid} is not running\n")
    p = run(root, "container", "nosuch")
    assert (p.returncode, p.stderr) == (1, "lamina: 'nosuch' is not a lamina container command.\n"
                                           "See 'lamina container --help'\n")
    p = run(root, "image", "diff", "mg:1", "mg:2")  # lamina's own, still there
    assert p.returncode == 0, p.stderr


def test_network_and_volume_aliases(root):
    same(root, ("network", "list", "--format", "{{.Name}}"), ("network", "ls", "--format", "{{.Name}}"))
    same(root, ("volume", "list", "-q"), ("volume", "ls", "-q"))
    assert run(root, "volume", "create", "mg-vol").returncode == 0
    p = run(root, "volume", "remove", "mg-vol")
    assert (p.returncode, p.stdout) == (0, "mg-vol\n"), p.stderr
    assert run(root, "network", "create", "mg-net").returncode == 0
    p = run(root, "network", "remove", "mg-net")
    assert (p.returncode, p.stdout) == (0, "mg-net\n"), p.stderr
    assert run(root, "network", "ls", "--help").stdout.split("Options:")[0].endswith("Aliases:\n  ls, list\n\n")
    # the aliases are not listed as commands of their own
    assert not re.search(r"^  (list|remove) ", run(root, "network", "--help").stdout, re.M)


def _commands(help_text: str) -> list[str]:
    return re.findall(r"^  ([a-z]+) ", help_text.split("Commands:")[1], re.M)


@pytest.mark.parametrize("group", ["container", "image"])
def test_help_lists_dockers_subcommands(root, group):
    """docker 20.10's lists, but prune (no lamina verb) and with lamina's `image diff`."""
    p = run(root, group)
    assert p.returncode == 0
    want = {"container": ["attach", "commit", "cp", "create", "diff", "exec", "export", "inspect", "kill", "logs",
                          "ls", "pause", "port", "rename", "restart", "rm", "run", "start", "stats", "stop", "top",
                          "unpause", "update", "wait"],
            "image": ["build", "diff", "history", "import", "inspect", "load", "ls", "pull", "push", "rm", "save",
                      "tag"]}[group]
    assert _commands(p.stdout) == want
    if os.path.exists(DOCKER):
        docker = subprocess.run([DOCKER, group, "--help"], capture_output=True, text=True, timeout=30).stdout
        assert [c for c in _commands(docker) if c != "prune"] == [c for c in want if c != "diff" or group != "image"]
        for sub in ("ls", "rm", "inspect"):
            mine = run(root, group, sub, "--help").stdout
            theirs = subprocess.run([DOCKER, group, sub, "--help"], capture_output=True, text=True,
                                    timeout=30).stdout.replace("docker", "lamina")
            assert mine.split("Options:")[0] == theirs.split("Options:")[0], (group, sub)
