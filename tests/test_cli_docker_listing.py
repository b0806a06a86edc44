"""`images -q`, `rmi`, RepoTags, a container's hostname and /etc files, `commit` and
`export` against docker 20.10 (issue 10: "Listing and removal", "Containers").

Each scenario runs the same commands through one CLI (docker's or lamina's) and
turns what it printed into a transcript free of what differs by nature between two
runs: image, layer and container IDs become names (`img:a`, `img:a/layer0`,
`ctr:w`), bridge addresses `<IP>`, the host's name `<HOST>`, the name prefix `T-`.
Docker's transcripts are recorded in tests/data/docker_listing.json
(`python tests/test_cli_docker_listing.py --record`, with dockerd running), so the
comparison runs without docker; where dockerd runs, the scenarios are re-run live
against it too, which keeps the recording true.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from conftest import requires_root

DATA = Path(__file__).parent / "data" / "docker_listing.json"
LAMINA = [sys.executable, "-m", "lamina"]


class Cli:
    """One CLI (argv prefix) plus what it takes to normalise its transcripts."""

    def __init__(self, argv: list[str], workdir: Path) -> None:
        self.argv = argv
        self.workdir = workdir
        self.prefix = "r2l" + uuid.uuid4().hex[:8] + "-"
        self.labels: dict[str, str] = {}  # 64-hex ID -> name
        self.containers: list[str] = []
        self.images: list[str] = []

    def name(self, short: str) -> str:
        return self.prefix + short

    def raw(self, *args: str) -> tuple[str, str, int]:
        p = subprocess.run(self.argv + list(args), capture_output=True, text=True, timeout=180)
        # the runc advisory is lamina's own notice, not part of the behaviour compared
        err = "".join(l for l in p.stderr.splitlines(True) if not l.startswith("WARNING: runc"))
        return p.stdout, err, p.returncode

    def ok(self, *args: str) -> str:
        out, err, rc = self.raw(*args)
        assert rc == 0, (args, out, err)
        return out

    def step(self, *args: str) -> str:
        """`$ args`, then stdout, stderr and a non-zero exit code, normalised."""
        out, err, rc = self.raw(*args)
        text = f"$ {' '.join(args)}\n{out}{err}" + (f"[exit {rc}]\n" if rc else "")
        return self.norm(text)

    # -- what the transcript names --------------------------------------------------
    def learn_image(self, ref: str, label: str) -> None:
        from lamina.digest import Digest, chain_ids

        out = self.ok("inspect", "-f", "{{.Id}} {{json .RootFS.Layers}}", ref)
        ident, layers = out.split(" ", 1)
        self.labels[ident.removeprefix("sha256:")] = f"img:{label}"
        self.images.append(ident)
        for i, chain in enumerate(chain_ids([Digest(d) for d in json.loads(layers)])):
            self.labels.setdefault(str(chain).removeprefix("sha256:"), f"img:{label}/layer{i}")

    def learn_container(self, name: str, label: str) -> None:
        self.labels[self.ok("inspect", "-f", "{{.Id}}", name).strip()] = f"ctr:{label}"

    def norm(self, text: str) -> str:
        text = text.replace(self.prefix, "T-")
        text = text.replace("Error response from daemon: ", "Error: ")  # the prefix is another case's

        def name(m: re.Match) -> str:
            hexa = m.group(2)
            for full, label in self.labels.items():
                if full == hexa or (len(hexa) == 12 and full.startswith(hexa)):
                    return m.group(1) + label
            return m.group(0)

        text = re.sub(r"(sha256:|\b)([0-9a-f]{64}|[0-9a-f]{12})\b", name, text)
        return re.sub(r"\b(?!127\.)\d+\.\d+\.\d+\.\d+\b", "<IP>", text)

    def cleanup(self) -> None:
        for c in self.containers:
            self.raw("rm", "-f", c)
        for i in reversed(self.images):
            self.raw("rmi", "-f", i)


def _unique_tar(cli: Cli, word: str) -> str:
    """A one-file rootfs tar whose layer no other image shares (so rmi frees it)."""
    path = cli.workdir / f"{word}.tar"
    data = f"{cli.prefix}{word}\n".encode()
    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo("stamp")
        info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
        t.addfile(info, io.BytesIO(data))
    return str(path)


def _import(cli: Cli, tar: str, ref: str, label: str) -> None:
    cli.ok("import", tar, cli.name(ref))
    cli.learn_image(cli.name(ref), label)


def _container(cli: Cli, label: str, *args: str) -> str:
    """`run` (or `create` when args start with it) a container named T-<label>."""
    verb, rest = (args[0], args[1:]) if args[:1] == ("create",) else ("run", args)
    name = cli.name(label)
    cli.containers.append(name)
    cli.raw(verb, "--name", name, *rest)
    cli.learn_container(name, label)
    return name


# --------------------------------------------------------------------------- listing and removal

def sc_images_q_one_row_per_tag(cli, bb):
    _import(cli, bb, "a:1", "a")
    cli.ok("tag", cli.name("a:1"), cli.name("a:2"))
    return cli.step("images", "-q", cli.name("a")) + cli.step("images", "-q", "--no-trunc", cli.name("a"))


def sc_repotags_sorted(cli, bb):
    _import(cli, bb, "z:9", "z")
    for t in ("a:2", "a:10", "m:1"):
        cli.ok("tag", cli.name("z:9"), cli.name(t))
    cli.ok("tag", cli.name("z:9"), "localhost:5000/" + cli.name("a:1"))  # sorts before docker.io/…
    return (cli.step("inspect", "-f", "{{json .RepoTags}}", cli.name("z:9"))
            + cli.step("images", "--format", "{{.Repository}}:{{.Tag}}", cli.name("a")))


def sc_rmi_tag_of_many(cli, bb):
    _import(cli, bb, "r:1", "r")
    cli.ok("tag", cli.name("r:1"), cli.name("r:2"))
    return cli.step("rmi", cli.name("r:2")) + cli.step("images", "-q", cli.name("r"))


def sc_rmi_id_of_many(cli, bb):
    _import(cli, _unique_tar(cli, "many"), "r:1", "r")
    cli.ok("tag", cli.name("r:1"), cli.name("q:1"))
    ident = cli.images[-1]
    return cli.step("rmi", ident[7:19]) + cli.step("rmi", "-f", ident[7:19])


def sc_rmi_frees_its_layer(cli, bb):
    _import(cli, _unique_tar(cli, "one"), "l:1", "l")
    return cli.step("rmi", cli.name("l:1"))


def sc_rmi_child_then_parents(cli, bb):
    _import(cli, bb, "base:1", "base")
    _container(cli, "w1", cli.name("base:1"), "sh", "-c", f"echo {cli.prefix} > /f1")
    cli.ok("commit", cli.name("w1"), cli.name("mid:1"))
    cli.learn_image(cli.name("mid:1"), "mid")
    _container(cli, "w2", cli.name("mid:1"), "sh", "-c", f"echo {cli.prefix} > /f2")
    cli.ok("commit", cli.name("w2"), cli.name("top:1"))
    cli.learn_image(cli.name("top:1"), "top")
    cli.ok("rm", cli.name("w1"), cli.name("w2"))
    return cli.step("rmi", cli.name("mid:1")) + cli.step("rmi", cli.name("top:1"))


def sc_rmi_image_in_use(cli, bb):
    _import(cli, _unique_tar(cli, "used"), "u:1", "u")
    cli.ok("tag", cli.name("u:1"), cli.name("u:2"))
    _container(cli, "c", "create", cli.name("u:1"), "sh")
    return (cli.step("rmi", cli.name("u:1")) + cli.step("rmi", cli.name("u:2"))
            + cli.step("rmi", cli.images[-1][7:19]))


def sc_rmi_force_untags_used_image(cli, bb):
    _import(cli, _unique_tar(cli, "forced"), "v:1", "v")
    cli.ok("tag", cli.name("v:1"), cli.name("v:2"))
    _container(cli, "c", "create", cli.name("v:1"), "sh")
    ps = ("ps", "-a", "--format", "{{.Image}} {{.Names}}")
    out = cli.step("rmi", "-f", cli.name("v:1"))
    out += cli.norm("".join(l + "\n" for l in cli.ok(*ps).splitlines() if cli.prefix in l))
    return out + cli.step("inspect", "-f", "{{.Image}} {{.Config.Image}}", cli.name("c"))


def sc_rmi_force_last_tag_of_used_image(cli, bb):
    _import(cli, _unique_tar(cli, "last"), "v:1", "v")
    _container(cli, "c", "create", cli.name("v:1"), "sh")
    out = cli.step("rmi", "-f", cli.name("v:1"))
    listed = [l for l in cli.ok("images", "-a", "-q", "--no-trunc").splitlines()
              if l.removeprefix("sha256:") in cli.labels]
    return out + cli.norm("images -a: " + " ".join(listed) + "\n")


def sc_rmi_force_missing(cli, bb):
    return cli.step("rmi", "-f", cli.name("nosuch:1")) + cli.step("rmi", cli.name("nosuch:1"))


# --------------------------------------------------------------------------- containers

_SHOW = "hostname; echo $HOSTNAME; cat /etc/hosts; cat /etc/hostname"


def _host_norm(text: str) -> str:
    """The host's name and /etc/hosts (what --network host shows) as placeholders."""
    host = os.uname().nodename
    text = "\n".join("<HOST>" if line == host else line for line in text.split("\n"))
    try:
        hosts = Path("/etc/hosts").read_text()
    except OSError:
        return text
    return text.replace(hosts, "<host's /etc/hosts>\n") if hosts else text


def _run_show(cli, label, *flags):
    name = cli.name(label)
    cli.containers.append(name)
    out, err, rc = cli.raw("run", "--name", name, *flags, cli.name("h:1"), "sh", "-c", _SHOW)
    cli.learn_container(name, label)
    return cli.norm(_host_norm(out + err)) + _host_norm(cli.step(
        "inspect", "-f", "{{.Config.Hostname}}\n{{json .Config.Domainname}} {{json .Config.Env}}", name))


def sc_hostname_is_short_id(cli, bb):
    _import(cli, bb, "h:1", "h")
    return _run_show(cli, "c")


def sc_hostname_flag_in_hosts(cli, bb):
    _import(cli, bb, "h:1", "h")
    return _run_show(cli, "c", "--hostname", "myhost")


def sc_hostname_fqdn_in_hosts(cli, bb):
    _import(cli, bb, "h:1", "h")
    return _run_show(cli, "c", "--hostname", "web.example.com")


def sc_network_none_hosts(cli, bb):
    _import(cli, bb, "h:1", "h")
    return _run_show(cli, "c", "--network", "none") + _run_show(cli, "d", "--network", "none", "--hostname", "nh")


def sc_network_host_hostname(cli, bb):
    _import(cli, bb, "h:1", "h")
    return _run_show(cli, "c", "--network", "host")


def sc_env_of_container_without_image_env(cli, bb):
    _import(cli, bb, "h:1", "h")
    _container(cli, "c", "create", cli.name("h:1"), "sh")
    _container(cli, "d", "create", "-e", "X=1", cli.name("h:1"), "sh")
    return (cli.step("inspect", "-f", "{{json .Config.Env}}", cli.name("c"))
            + cli.step("inspect", "-f", "{{json .Config.Env}}", cli.name("d")))


_IMAGE_FIELDS = ("Comment", "Author", "Config", "ContainerConfig")


def _image_doc(cli, ref):
    doc = json.loads(cli.ok("inspect", ref))[0]
    return cli.norm(json.dumps({k: doc[k] for k in _IMAGE_FIELDS}, sort_keys=True) + "\n")


def sc_commit_message_and_config(cli, bb):
    _import(cli, bb, "cm:1", "cm")
    _container(cli, "c", cli.name("cm:1"), "sh", "-c", "echo hi > /f")
    cli.ok("commit", "-m", "my message", cli.name("c"), cli.name("cm:2"))
    cli.learn_image(cli.name("cm:2"), "cm2")
    out = _image_doc(cli, cli.name("cm:2"))
    out += cli.step("history", "--format", "{{.CreatedBy}}|{{.Comment}}", cli.name("cm:2"))
    cli.ok("commit", "-a", "Ann <a@x>", "-c", "ENV A=b", cli.name("c"), cli.name("cm:3"))
    cli.learn_image(cli.name("cm:3"), "cm3")
    return out + _image_doc(cli, cli.name("cm:3"))


def sc_commit_keeps_run_options(cli, bb):
    _import(cli, bb, "cm:1", "cm")
    _container(cli, "c", "-e", "X=1", "-w", "/tmp", "--hostname", "hh", "-u", "0", "-l", "a=b",
               cli.name("cm:1"), "true")
    cli.ok("commit", cli.name("c"), cli.name("cm:4"))
    cli.learn_image(cli.name("cm:4"), "cm4")
    return _image_doc(cli, cli.name("cm:4"))


def _tar_listing(path: Path) -> str:
    """Every header field but the mtime, as Python's tarfile reads them."""
    rows = []
    with tarfile.open(path) as t:
        for m in t.getmembers():
            rows.append(f"{m.name} {m.type.decode()} {m.mode:o} {m.uid}:{m.gid} {m.uname}/{m.gname} {m.size} "
                        f"{m.linkname} {m.devmajor},{m.devminor} {sorted(m.pax_headers)}")
    return "\n".join(sorted(rows)) + "\n"


def sc_export_headers_created(cli, bb):
    _import(cli, bb, "ex:1", "ex")
    _container(cli, "c", "create", cli.name("ex:1"), "sh")
    out = cli.workdir / "created.tar"
    cli.ok("export", "-o", str(out), cli.name("c"))
    return _tar_listing(out)


def sc_export_headers_owners(cli, bb):
    _import(cli, bb, "ex:1", "ex")
    script = ("mkdir /o; for p in 1000:1000 2:50 4242:4242 100:100 65534:65534 1:2; do touch /o/f$p; "
              "chown $p /o/f$p; done; chmod 4755 /o/f1:2; mknod /o/null c 1 3; mkfifo /o/fifo; "
              "ln /o/f1000:1000 /o/hard; echo x > /etc/hosts.new")
    _container(cli, "c", cli.name("ex:1"), "sh", "-c", script)
    out = cli.workdir / "owners.tar"
    cli.ok("export", "-o", str(out), cli.name("c"))
    return _tar_listing(out)


SCENARIOS = {name[3:]: fn for name, fn in sorted(globals().items()) if name.startswith("sc_")}
# Left as docker differs (the test fails the day it is fixed, so it gets moved back):
# docker deletes the image record and prints `Deleted:`; lamina keeps the image,
# untagged, for the container (its `start` and `commit` read the image).
KNOWN_DIFFERENT = {"rmi_force_last_tag_of_used_image"}


def run_scenario(argv: list[str], name: str, busybox_tar, workdir: Path) -> str:
    cli = Cli(argv, workdir)
    try:
        return SCENARIOS[name](cli, str(busybox_tar))
    finally:
        cli.cleanup()


def _docker_available() -> bool:
    return bool(shutil.which("docker")) and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


RECORDED = json.loads(DATA.read_text()) if DATA.exists() else {"scenarios": {}}


def test_every_scenario_is_recorded():
    assert sorted(RECORDED["scenarios"]) == sorted(SCENARIOS)


@requires_root
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="docker deletes the image record"))
    if n in KNOWN_DIFFERENT else n for n in sorted(SCENARIOS)])
def test_as_docker(name, busybox_tar, tmp_path):
    argv = LAMINA + ["--root", str(tmp_path / "store")]
    assert run_scenario(argv, name, busybox_tar, tmp_path) == RECORDED["scenarios"][name]


@requires_root
@pytest.mark.skipif(not _docker_available(), reason="needs a running dockerd")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_recording_is_what_docker_prints(name, busybox_tar, tmp_path):
    assert run_scenario(["docker"], name, busybox_tar, tmp_path) == RECORDED["scenarios"][name]


# --------------------------------------------------------------------------- unit cases

def test_hosts_names_as_libnetwork():
    from lamina.runner import hosts_names

    assert hosts_names("abc123") == "abc123"
    assert hosts_names("web.example.com") == "web.example.com web"
    assert hosts_names("a.") == "a. a"


@requires_root
def test_export_names_come_from_the_containers_files_not_the_hosts(tmp_path):
    from lamina.archive.layertar import write_tree
    from lamina.runtime.idnames import id_names

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\ndup:x:1000:1::/:/\n")
    (root / "etc/group").write_text("root:x:0:\nstaff:x:50:\n")
    (root / "f").write_text("x")
    os.chown(root / "f", 1000, 50)
    os.chown(root / "etc", 4242, 0)
    users, groups = id_names(str(root))
    assert users == {0: "root", 1000: "app"} and groups == {0: "root", 50: "staff"}  # first entry wins
    buf = io.BytesIO()
    write_tree(str(root), buf, owner_names=(users, groups))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        assert [(m.name, m.uname, m.gname) for m in t.getmembers()] == [
            ("etc", "", "root"), ("etc/group", "root", "root"), ("etc/passwd", "root", "root"), ("f", "app", "staff")]
    buf = io.BytesIO()
    write_tree(str(root), buf)  # a layer: no names, as before
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        assert {(m.uname, m.gname) for m in t.getmembers()} == {("", "")}


def test_long_owner_names_go_to_pax_records():
    from lamina.archive.tarwriter import encode_header, REG

    long = "u" * 40
    data = encode_header("f", REG, 0o644, 5, 6, 0, 0, uname=long, gname="ü") + bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        m = t.getmembers()[0]
    assert (m.uname, m.gname) == (long, "ü")


def test_symlinked_passwd_is_resolved_inside_the_root(tmp_path):
    from lamina.runtime.idnames import id_names

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "real/passwd").write_text("seven:x:7:7::/:/bin/sh\n")
    (root / "etc/passwd").symlink_to("/real/passwd")  # absolute: the root's /real, not the host's
    (root / "etc/group").mkdir()  # not a regular file: no names, no error
    assert id_names(str(root)) == ({7: "seven"}, {})


def _record(busybox_tar: Path) -> None:
    import tempfile

    out = {"docker": subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True,
                                    text=True).stdout.strip(), "scenarios": {}}
    for name in sorted(SCENARIOS):
        with tempfile.TemporaryDirectory() as d:
            out["scenarios"][name] = run_scenario(["docker"], name, busybox_tar, Path(d))
        print(name, file=sys.stderr)
    DATA.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    from conftest import make_busybox_rootfs, make_rootfs_tar

    with tempfile.TemporaryDirectory() as d:
        _record(make_rootfs_tar(make_busybox_rootfs(Path(d) / "rootfs"), Path(d) / "busybox.tar"))
