"""Named local volumes as docker's `local` driver (issue 13): `volume create/ls/inspect/
rm/prune`, `run -v NAME:/path[:ro|nocopy]`, anonymous volumes (`-v /path`, the image's
VOLUME) removed by `rm -v` and `--rm`, copy-up of the image's content into an empty
volume (owners and modes kept, never through a symlink out of the rootfs), and
`system prune --volumes`.

docker's texts and shapes were recorded from the 20.10 CLI (/usr/bin/docker against
dockerd 20.10.24) on the issue's host; where dockerd runs, they are checked live too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import uuid

import pytest

from conftest import requires_root
from test_cli_core import lamina, out
from test_net_user_networks import DOCKER, requires_docker

# docker 20.10's answers: (stderr, exit code); {v} stands for the volume name used.
RECORDED = {
    "create-dotdot": (["volume", "create", "../x"], 'Error response from daemon: create ../x: "../x" includes invalid '
                      'characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                      "intended to pass a host directory, use absolute path", 1),
    "create-slash": (["volume", "create", "/"], "Error response from daemon: create /: volume name is too short, "
                     "names should be at least two alphanumeric characters", 1),
    "create-short": (["volume", "create", "a"], "Error response from daemon: create a: volume name is too short, "
                     "names should be at least two alphanumeric characters", 1),
    "create-space": (["volume", "create", "a b"], 'Error response from daemon: create a b: "a b" includes invalid '
                     'characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                     "intended to pass a host directory, use absolute path", 1),
    "create-bad-opt": (["volume", "create", "-o", "foo=bar", "{v}"],
                       'Error response from daemon: create {v}: invalid option: "foo"', 1),
    "create-type-alone": (["volume", "create", "-o", "type", "{v}"],
                          'Error response from daemon: create {v}: missing required option: "device"', 1),
    "inspect-missing": (["volume", "inspect", "{v}"], "Error: No such volume: {v}", 1),
    "rm-missing": (["volume", "rm", "{v}"], "Error: No such volume: {v}", 1),
    "rm-missing-force": (["volume", "rm", "-f", "{v}"], "", 0),
    "ls-bad-filter": (["volume", "ls", "-f", "bogus=1"], "Error response from daemon: Invalid filter 'bogus'", 1),
    "ls-bad-dangling": (["volume", "ls", "-f", "dangling=maybe"],
                        "Error response from daemon: Invalid filter 'dangling=[maybe]'", 1),
    "prune-bad-filter": (["volume", "prune", "-f", "--filter", "name=x"],
                         "Error response from daemon: Invalid filter 'name'", 1),
}
RUN_RECORDED = {  # run's (docker's `docker: ...` becomes `lamina: ...`), exit 125
    "bad-mode": (["-v", "{v}:/x:bogus"], "Error response from daemon: invalid mode: bogus."),
    "relative-target": (["-v", "{v}:x"], "Error response from daemon: invalid volume specification: '{v}:x': invalid "
                        "mount config for type \"volume\": invalid mount path: 'x' mount path must be absolute."),
    "two-modes": (["-v", "{v}:/x:ro:rw"], "Error response from daemon: invalid volume specification: "
                  "'{v}:/x:ro:rw'."),
    "ro-and-rw": (["-v", "{v}:/x:ro,rw"], "Error response from daemon: invalid mode: ro,rw."),
    "propagation": (["-v", "{v}:/x:shared"], "Error response from daemon: invalid volume specification: "
                    "'{v}:/x:shared': invalid mount config for type \"volume\": field BindOptions must not be "
                    "specified."),
    "root-target": (["-v", "{v}:/"], "Error response from daemon: invalid volume specification: '{v}:/': invalid "
                    "mount config for type \"volume\": invalid specification: destination can't be '/'."),
    "bind-nocopy": (["-v", "/tmp:/b:nocopy"], "Error response from daemon: invalid volume specification: "
                    "'/tmp:/b:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be "
                    "specified."),
}
INSPECT_KEYS = ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
LS_JSON_KEYS = ["Driver", "Labels", "Links", "Mountpoint", "Name", "Scope", "Size"]
MOUNT_KEYS = ["Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation"]
PRUNE_PROMPT = ("WARNING! This will remove all local volumes not used by at least one container.\n"
                "Are you sure you want to continue? [y/N] ")


def vname() -> str:
    return "h10t-" + uuid.uuid4().hex[:8]


@pytest.fixture
def root(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "bb:1")
    yield root
    ids = out(lamina(root, "ps", "-aq", "--no-trunc", check=False)).split()
    if ids:
        lamina(root, "rm", "-f", "-v", *ids, check=False)


def volumes(root) -> list[str]:
    return out(lamina(root, "volume", "ls", "-q")).split()


def err(p) -> str:
    return "\n".join(line for line in p.stderr.decode().splitlines() if not line.startswith("WARNING: runc"))


def run(root, *args, check=True):
    return lamina(root, "run", *args, check=check)


def assert_nothing_left(root) -> None:
    with open("/proc/self/mountinfo") as f:
        assert str(root) not in f.read()
    p = lamina(root, "system", "check", "--quick", check=False)
    assert p.returncode == 0, out(p) + p.stderr.decode()


# ------------------------------------------------------------------ CLI, against docker's recordings


@requires_root
def test_volume_errors_are_dockers(root):
    v = vname()
    for case, (args, text, code) in RECORDED.items():
        p = lamina(root, *[a.replace("{v}", v) for a in args], check=False)
        assert (err(p), p.returncode) == (text.replace("{v}", v), code), case
    for case, (args, text) in RUN_RECORDED.items():
        p = run(root, "--rm", *[a.replace("{v}", v) for a in args], "bb:1", "true", check=False)
        assert (err(p), p.returncode) == (f"lamina: {text.replace('{v}', v)}\nSee 'lamina run --help'.", 125), case
    assert volumes(root) == []
    assert not os.path.exists(root / "x") and not os.path.exists(root.parent / "x")


@requires_docker
def test_recordings_match_live_docker():
    v = vname()
    for case, (args, text, code) in RECORDED.items():
        p = subprocess.run([DOCKER, *[a.replace("{v}", v) for a in args]], capture_output=True, timeout=60)
        assert (p.stderr.decode().strip(), p.returncode) == (text.replace("{v}", v), code), case
    for case, (args, text) in RUN_RECORDED.items():
        p = subprocess.run([DOCKER, "run", "--rm", *[a.replace("{v}", v) for a in args], "lamina-test-runtime:busybox",
                            "true"], capture_output=True, timeout=60)
        assert (p.stderr.decode().strip(), p.returncode) == (f"docker: {text.replace('{v}', v)}\n"
                                                             "See 'docker run --help'.", 125), case
    # the shapes: inspect's keys, ls's JSON keys, and a prune of named unused volumes (API 1.41)
    p = subprocess.run([DOCKER, "volume", "create", "--label", f"{v}=1", v], capture_output=True, check=True)
    try:
        got = json.loads(subprocess.run([DOCKER, "volume", "inspect", v], capture_output=True, check=True).stdout)
        assert list(got[0]) == INSPECT_KEYS
        row = json.loads(subprocess.run([DOCKER, "volume", "ls", "-f", f"name={v}", "--format", "{{json .}}"],
                                        capture_output=True, check=True).stdout)
        assert list(row) == LS_JSON_KEYS
    finally:
        p = subprocess.run([DOCKER, "volume", "prune", "-f", "--filter", f"label={v}"], capture_output=True)
    assert p.stdout.decode() == f"Deleted Volumes:\n{v}\n\nTotal reclaimed space: 0B\n"



# docker 20.10's Mounts for `create -v NAME:/d -v /anon -v NAMEx:/r:ro` (Name/Source vary), as lamina's must be
RECORDED_MOUNTS = {"/d": ("volume", "local", "z", True, ""), "/anon": ("volume", "local", "", True, ""),
                   "/r": ("volume", "local", "ro", False, "")}


def mount_shape(mounts: list) -> dict:
    return {m["Destination"]: (m["Type"], m["Driver"], m["Mode"], m["RW"], m["Propagation"]) for m in mounts}


@requires_docker
def test_mounts_recording_matches_live_docker():
    v = vname()
    cid = subprocess.run([DOCKER, "create", "-v", f"{v}:/d", "-v", "/anon", "-v", f"{v}x:/r:ro",
                          "lamina-test-runtime:busybox", "true"], capture_output=True, check=True).stdout.decode().strip()
    try:
        got = json.loads(subprocess.run([DOCKER, "inspect", cid], capture_output=True, check=True).stdout)[0]
    finally:
        subprocess.run([DOCKER, "rm", "-v", cid], capture_output=True)
        subprocess.run([DOCKER, "volume", "rm", v, v + "x"], capture_output=True)
    assert all(list(m) == MOUNT_KEYS for m in got["Mounts"])
    assert mount_shape(got["Mounts"]) == RECORDED_MOUNTS
    assert sorted(got["HostConfig"]["Binds"]) == [f"{v}:/d", f"{v}x:/r:ro"]  # docker's order varies (a Go map)
    assert got["Config"]["Volumes"] == {"/anon": {}}


@requires_root
def test_create_ls_inspect_shapes(root):
    a, b = vname(), vname()
    assert out(lamina(root, "volume", "create", a)) == f"{a}\n"
    assert out(lamina(root, "volume", "create", a)) == f"{a}\n"  # idempotent, as dockerd
    lamina(root, "volume", "create", "--label", "x=1", "--label", "flag", b)
    anon = out(lamina(root, "volume", "create")).strip()
    assert len(anon) == 64 and int(anon, 16) >= 0
    got = json.loads(out(lamina(root, "volume", "inspect", a, b)))
    assert [list(i) for i in got] == [INSPECT_KEYS, INSPECT_KEYS]
    assert got[1]["Labels"] == {"x": "1", "flag": ""} and got[1]["Options"] == {}
    assert got[0]["Driver"] == "local" and got[0]["Scope"] == "local"
    assert got[0]["Mountpoint"] == f"{root}/volumes/{a}/_data" and os.path.isdir(got[0]["Mountpoint"])
    assert got[0]["CreatedAt"].endswith("Z") and len(got[0]["CreatedAt"]) == 20
    listing = out(lamina(root, "volume", "ls")).splitlines()
    assert listing[0].split() == ["DRIVER", "VOLUME", "NAME"]
    from lamina.cli.commands.volume import natural_less

    names = [line.split()[1] for line in listing[1:]]
    assert sorted(names) == sorted([anon, a, b])
    assert all(natural_less(x, y) for x, y in zip(names, names[1:]))  # docker's CLI order
    rows = [json.loads(line) for line in out(lamina(root, "volume", "ls", "--format", "{{json .}}")).splitlines()]
    assert all(list(r) == LS_JSON_KEYS for r in rows)
    assert {r["Name"]: r["Labels"] for r in rows}[b] == "flag=,x=1"
    assert out(lamina(root, "volume", "ls", "-q", "-f", "label=x=1")) == f"{b}\n"
    assert out(lamina(root, "volume", "ls", "-q", "-f", "label=x=2")) == ""
    assert out(lamina(root, "volume", "ls", "-q", "-f", f"name={a[:-2]}")).split() == [a]
    assert out(lamina(root, "volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{json .Labels}}", b)) == \
        f'{b} local {{"flag":"","x":"1"}}\n'
    lamina(root, "volume", "rm", b)
    events = [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines()]
    assert [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in events if e["Type"] == "volume"] == [
        ("create", a, {"driver": "local"}), ("create", b, {"driver": "local"}), ("create", anon, {"driver": "local"}),
        ("destroy", b, {"driver": "local"})]  # docker events' shape; a second create of `a` made nothing


def test_natural_order():
    from lamina.cli.commands.volume import natural_less

    # docker's CLI listed these in this order (fvbommel/sortorder): digit runs as numbers, digits first
    names = ["1bfc6", "2ed1b", "9f263", "020f0", "21bcb", "126c1", "2830b", "a5bd8", "h10a", "h10b"]
    for x, y in zip(names, names[1:]):
        assert natural_less(x, y) and not natural_less(y, x), (x, y)


# ------------------------------------------------------------------ run -v


@requires_root
def test_data_persists_and_ro(root):
    v = vname()
    run(root, "--rm", "-v", f"{v}:/d", "bb:1", "sh", "-c", "echo kept > /d/f")
    assert out(run(root, "--rm", "-v", f"{v}:/data", "bb:1", "cat", "/data/f")) == "kept\n"
    p = run(root, "--rm", "-v", f"{v}:/d:ro", "bb:1", "sh", "-c", "cat /d/f; touch /d/g", check=False)
    assert out(p) == "kept\n" and p.returncode == 1 and "Read-only file system" in p.stderr.decode()
    assert os.listdir(root / "volumes" / v / "_data") == ["f"]
    assert volumes(root) == [v]  # a named volume stays after --rm
    assert_nothing_left(root)


@requires_root
def test_inspect_mounts_and_in_use(root):
    v = vname()
    cid = out(lamina(root, "create", "--name", "c1", "-v", f"{v}:/d", "-v", "/anon", "-v", f"{v}x:/r:ro",
                     "bb:1", "true")).strip()
    got = json.loads(out(lamina(root, "inspect", "c1")))[0]
    assert got["HostConfig"]["Binds"] == [f"{v}:/d", f"{v}x:/r:ro"]
    assert got["Config"]["Volumes"] == {"/anon": {}}
    mounts = {m["Destination"]: m for m in got["Mounts"]}
    assert all(list(m) == MOUNT_KEYS for m in mounts.values())
    assert mount_shape(got["Mounts"]) == RECORDED_MOUNTS
    assert mounts["/d"] == {"Type": "volume", "Name": v, "Source": f"{root}/volumes/{v}/_data", "Destination": "/d",
                            "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    assert (mounts["/r"]["Mode"], mounts["/r"]["RW"]) == ("ro", False)
    anon = mounts["/anon"]["Name"]
    assert len(anon) == 64 and mounts["/anon"]["Mode"] == ""
    for force in ((), ("-f",)):  # dockerd refuses -f too
        p = lamina(root, "volume", "rm", *force, v, check=False)
        assert (err(p), p.returncode) == (f"Error response from daemon: remove {v}: volume is in use - [{cid}]", 1)
    assert out(lamina(root, "volume", "ls", "-q", "-f", "dangling=true")) == ""
    lamina(root, "rm", "c1")  # without -v: the anonymous volume stays, dangling
    assert sorted(out(lamina(root, "volume", "ls", "-q", "-f", "dangling=true")).split()) == sorted([anon, v, v + "x"])
    assert out(lamina(root, "volume", "rm", v)) == f"{v}\n"
    assert not os.path.exists(root / "volumes" / v)


@requires_root
def test_listings_show_volumes_as_volumes(root, tmp_path):
    """ps's .Mounts/.LocalVolumes and GET /containers/json's Mounts name a volume, as
    dockerd 20.10 lists `create -v NAME:/n -v /anon -v DIR:/b:ro --mount type=tmpfs,...`:
    "/var/tmp/robus…,,robustvol,64a68be258c5df…" 2 (a Go map's order) and
    {"Type":"volume","Name":"robustvol",...,"Driver":"local","Mode":"z"}."""
    from lamina.engine.summaries import container_summaries
    from lamina.system import System

    v, bind = vname(), tmp_path / "a-long-bind-directory"
    bind.mkdir()
    lamina(root, "create", "--name", "lst", "-v", f"{v}:/n", "-v", "/anon", "-v", f"{bind}:/b:ro",
           "--mount", "type=tmpfs,target=/t", "bb:1", "true")
    anon = json.loads(out(lamina(root, "inspect", "-f", "{{json .Mounts}}", "lst")))
    anon = next(m["Name"] for m in anon if m["Destination"] == "/anon")
    shown = out(lamina(root, "ps", "-a", "--format", "{{.Mounts}}|{{.LocalVolumes}}")).strip()
    names, local = shown.split("|")
    assert local == "2"
    assert sorted(names.split(",")) == sorted([str(bind)[:14] + "…", "", v, anon[:14] + "…"])
    shown = out(lamina(root, "ps", "-a", "--no-trunc", "--format", "{{.Mounts}}")).strip()
    assert sorted(shown.split(",")) == sorted([str(bind), "", v, anon])
    system = System(str(root))
    try:
        (item,) = container_summaries(system, system.containers.list())
    finally:
        system.close()
    mounts = {m["Destination"]: m for m in item["Mounts"]}
    assert mounts["/n"] == {"Type": "volume", "Name": v, "Source": f"{root}/volumes/{v}/_data", "Destination": "/n",
                            "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    assert (mounts["/anon"]["Type"], mounts["/anon"]["Name"]) == ("volume", anon)
    assert mounts["/b"] == {"Type": "bind", "Source": str(bind), "Destination": "/b", "Mode": "ro", "RW": False,
                            "Propagation": "rprivate"}
    assert mounts["/t"]["Type"] == "tmpfs" and len(mounts) == 4
    lamina(root, "rm", "-v", "lst")


def build(root, tmp_path, tag: str, dockerfile: str) -> None:
    """`build -q -t TAG` of a context holding only `dockerfile`."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    lamina(root, "build", "-q", "-t", tag, str(ctx))


@requires_root
def test_anonymous_volumes_go_with_rm_v_and_run_rm(root, tmp_path):
    build(root, tmp_path, "withvol:1", "FROM bb:1\nRUN mkdir /vol && echo v > /vol/x\nVOLUME /vol\n")
    named = vname()
    run(root, "--name", "c2", "-v", "/anon", "-v", f"{named}:/n", "withvol:1", "cat", "/vol/x")
    got = json.loads(out(lamina(root, "inspect", "c2")))[0]
    assert got["Config"]["Volumes"] == {"/anon": {}, "/vol": {}}
    anon = sorted(m["Name"] for m in got["Mounts"] if m["Name"] != named)
    assert len(anon) == 2 and sorted(volumes(root)) == sorted(anon + [named])
    lamina(root, "rm", "-v", "c2")
    assert volumes(root) == [named]  # the named one stays, as docker's rm -v
    assert out(run(root, "--rm", "withvol:1", "cat", "/vol/x")) == "v\n"  # copied up into the anonymous volume
    assert volumes(root) == [named]  # --rm removed it
    assert sorted(os.listdir(root / "volumes")) == [named]
    assert_nothing_left(root)


@requires_root
def test_copy_up_keeps_owners_modes_and_stays_in_root(root, tmp_path):
    host_dir = tmp_path / "host-only"
    host_dir.mkdir()
    (host_dir / "secret").write_text("host\n")
    build(
        root, tmp_path, "cu:1",
        "FROM bb:1\n"
        "RUN mkdir -p /data/sub && echo hello > /data/f && chown 123:456 /data/f && chmod 0640 /data/f"
        " && chmod 0750 /data/sub && chown 7:8 /data && ln -s /etc/passwd /data/link"
        f" && ln -s {host_dir} /esc && ln -s ../../../../../../data /up\n")
    v, nc, esc, up = vname(), vname(), vname(), vname()
    listing = out(run(root, "--rm", "-v", f"{v}:/data", "cu:1", "ls", "-lan", "/data"))
    data = root / "volumes" / v / "_data"
    st = os.lstat(data)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (7, 8, 0o755)
    st = os.lstat(data / "f")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (123, 456, 0o640)
    assert os.lstat(data / "sub").st_mode & 0o7777 == 0o750
    assert os.readlink(data / "link") == "/etc/passwd"  # a link is copied as a link
    assert " 7 " in listing and "link -> /etc/passwd" in listing
    # copied once: a later change in the image's place does not come back
    run(root, "--rm", "-v", f"{v}:/data", "cu:1", "rm", "/data/f")
    assert not os.path.exists(data / "f")
    assert out(run(root, "--rm", "-v", f"{v}:/data", "cu:1", "ls", "/data")).split() == ["link", "sub"]
    assert out(run(root, "--rm", "-v", f"{nc}:/data:nocopy", "cu:1", "ls", "-A", "/data")) == ""
    # the image's absolute link to a host path resolves inside the rootfs (missing there): nothing copied
    run(root, "--rm", "-v", f"{esc}:/esc", "cu:1", "true")
    assert os.listdir(root / "volumes" / esc / "_data") == []
    # a link climbing out stops at the rootfs' root: /up is the image's /data, not the host's /data
    run(root, "--rm", "-v", f"{up}:/up", "cu:1", "true")
    assert sorted(os.listdir(root / "volumes" / up / "_data")) == ["f", "link", "sub"]
    assert_nothing_left(root)


@requires_root
def test_a_file_bind_onto_an_images_fifo_neither_blocks_nor_opens_it(root, tmp_path):
    # the runtime binds the file over the FIFO; lamina, making missing mount points for
    # crun, must not open what the image put there (a FIFO would block the start for ever)
    build(root, tmp_path, "ff:1", "FROM bb:1\nRUN mkfifo /fifo\n")
    src = tmp_path / "f"
    src.write_text("host\n")
    p = lamina(root, "run", "--rm", "-v", f"{src}:/fifo", "ff:1", "sh", "-c", "read l < /fifo; echo $l", timeout=60)
    assert out(p).strip() == "host"


# ------------------------------------------------------------------ prune


@requires_root
def test_prune_removes_unused_named_and_anonymous(root):
    used, unused = vname(), vname()
    lamina(root, "volume", "create", "--label", "keep=no", unused)
    (root / "volumes" / unused / "_data" / "blob").write_bytes(b"x" * 2000)
    lamina(root, "create", "--name", "holder", "-v", f"{used}:/u", "bb:1", "true")
    anon = out(lamina(root, "volume", "create")).strip()
    p = lamina(root, "volume", "prune", input=b"n\n")
    assert out(p) == PRUNE_PROMPT + "Total reclaimed space: 0B\n"
    assert sorted(volumes(root)) == sorted([used, unused, anon])
    p = lamina(root, "volume", "prune", "-f", "--filter", "label=keep=no")
    assert out(p) == f"Deleted Volumes:\n{unused}\n\nTotal reclaimed space: 2kB\n"
    p = lamina(root, "volume", "prune", "-f")
    assert out(p) == f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 0B\n"
    assert volumes(root) == [used]
    lamina(root, "rm", "holder")
    p = lamina(root, "system", "prune", "-f", "--volumes")
    assert f"Deleted Volumes:\n{used}\n\n" in out(p)
    assert volumes(root) == [] and os.listdir(root / "volumes") == []
    with sqlite3.connect(root / "lamina.db") as db:
        assert db.execute("SELECT COUNT(*) FROM volume_mounts").fetchone()[0] == 0
    assert_nothing_left(root)


# ------------------------------------------------------------------ --mount, --volumes-from

MOUNT_RECORDED = {  # docker 20.10, `docker run --rm --mount VALUE IMAGE true`: (stderr without "See ...", 125)
    "type=volume": 'invalid argument "type=volume" for "--mount" flag: target is required',
    "type=volume,src={v}": 'invalid argument "type=volume,src={v}" for "--mount" flag: target is required',
    "type=bogus,dst=/x": 'docker: Error response from daemon: invalid mount config for type "bogus": mount type '
                         'unknown.',
    "type=volume,dst=x": 'docker: Error response from daemon: invalid mount config for type "volume": invalid mount '
                         "path: 'x' mount path must be absolute.",
    "type=bind,dst=/x": 'docker: Error response from daemon: invalid mount config for type "bind": field Source must '
                        "not be empty.",
    "type=bind,src=/nonexist-h10,dst=/x": 'docker: Error response from daemon: invalid mount config for type "bind": '
                                          "bind source path does not exist: /nonexist-h10.",
    "type=volume,src=/abs,dst=/x": 'docker: Error response from daemon: create /abs: "/abs" includes invalid '
                                   'characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. '
                                   "If you intended to pass a host directory, use absolute path.",
    "type=volume,src={v},dst=/x,foo=bar": 'invalid argument "type=volume,src={v},dst=/x,foo=bar" for "--mount" flag: '
                                          "unexpected key 'foo' in 'foo=bar'",
    "type=tmpfs,src=x,dst=/x": 'docker: Error response from daemon: invalid mount config for type "tmpfs": field '
                               "Source must not be specified.",
    "type=volume,src={v},dst=/x,readonly=maybe": 'invalid argument "type=volume,src={v},dst=/x,readonly=maybe" for '
                                                 '"--mount" flag: invalid value for readonly: maybe',
    "type=volume,src=a,dst=/x": "docker: Error response from daemon: create a: volume name is too short, names "
                                "should be at least two alphanumeric characters.",
}


@requires_root
def test_mount_flag_errors_are_dockers(root):
    v = vname()
    for value, text in MOUNT_RECORDED.items():
        p = run(root, "--rm", "--mount", value.replace("{v}", v), "bb:1", "true", check=False)
        want = text.replace("{v}", v).replace("docker: ", "lamina: ") + "\nSee 'lamina run --help'."
        assert (err(p), p.returncode) == (want, 125), value
    assert volumes(root) == []


@requires_docker
def test_mount_recordings_match_live_docker():
    v = vname()
    for value, text in MOUNT_RECORDED.items():
        p = subprocess.run([DOCKER, "run", "--rm", "--mount", value.replace("{v}", v), "lamina-test-runtime:busybox",
                            "true"], capture_output=True, timeout=60)
        assert (p.stderr.decode().strip(), p.returncode) == (text.replace("{v}", v) + "\nSee 'docker run --help'.",
                                                             125), value


@requires_root
def test_mount_flag_and_volumes_from(root, tmp_path):
    v = vname()
    host = tmp_path / "hostdir"
    host.mkdir()
    p = run(root, "--name", "m1", "--mount", f"type=volume,src={v},dst=/m", "--mount", "type=volume,dst=/m2",
            "--mount", f"type=bind,src={host},dst=/t,readonly", "--mount", "type=tmpfs,dst=/tm,tmpfs-size=1m",
            "bb:1", "sh", "-c", "echo a > /m/f; touch /t/x 2>/dev/null || echo ro; grep ' /tm ' /proc/mounts")
    assert out(p).startswith("ro\ntmpfs /tm tmpfs ") and "size=1024k" in out(p)
    got = json.loads(out(lamina(root, "inspect", "m1")))[0]
    assert got["HostConfig"]["Mounts"] == [
        {"Type": "volume", "Source": v, "Target": "/m"}, {"Type": "volume", "Target": "/m2"},
        {"Type": "bind", "Source": str(host), "Target": "/t", "ReadOnly": True},
        {"Type": "tmpfs", "Target": "/tm", "TmpfsOptions": {"SizeBytes": 1048576}}]
    assert got["HostConfig"]["Binds"] is None and got["Config"]["Volumes"] is None
    mounts = {m["Destination"]: m for m in got["Mounts"]}
    assert (mounts["/m"]["Mode"], mounts["/m2"]["Mode"]) == ("z", "z")
    assert mounts["/t"] == {"Type": "bind", "Source": str(host), "Destination": "/t", "Mode": "", "RW": False,
                            "Propagation": "rprivate"}
    assert mounts["/tm"] == {"Type": "tmpfs", "Source": "", "Destination": "/tm", "Mode": "", "RW": True,
                             "Propagation": ""}
    anon = mounts["/m2"]["Name"]
    # --volumes-from NAME:ro: the same volumes, read-only, Mode "" as dockerd shows them
    p = run(root, "--name", "m2", "--volumes-from", "m1:ro", "bb:1", "sh", "-c", "cat /m/f; touch /m/g", check=False)
    assert out(p) == "a\n" and "Read-only file system" in p.stderr.decode()
    got = {m["Destination"]: m for m in json.loads(out(lamina(root, "inspect", "m2")))[0]["Mounts"]}
    assert {d: (m["Name"], m["Mode"], m["RW"]) for d, m in got.items()} == {"/m": (v, "", False),
                                                                            "/m2": (anon, "", False)}
    p = run(root, "--rm", "--volumes-from", "nosuch-h10", "bb:1", "true", check=False)
    assert (err(p), p.returncode) == ("lamina: Error response from daemon: No such container: nosuch-h10.\n"
                                      "See 'lamina run --help'.", 125)
    lamina(root, "rm", "-v", "m1")  # m2 still uses the anonymous volume: kept, as dockerd
    assert sorted(volumes(root)) == sorted([v, anon])
    lamina(root, "rm", "-v", "m2")
    assert volumes(root) == [v]
    assert_nothing_left(root)


# ------------------------------------------------------------------ confinement and leftovers


@requires_root
def test_a_forged_row_never_reaches_outside_the_volumes_dir(root):
    victim = root / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    lamina(root, "volume", "ls")  # the tables exist
    with sqlite3.connect(root / "lamina.db") as db:
        db.execute("INSERT INTO volumes VALUES ('../victim', 'local', '{}', '{}', 0, 0)")
    p = lamina(root, "volume", "rm", "../victim", check=False)
    assert p.returncode == 1 and "includes invalid characters" in err(p)
    assert (victim / "keep").read_text() == "x"
    p = lamina(root, "volume", "prune", "-f", check=False)
    assert (victim / "keep").read_text() == "x"


@requires_root
def test_a_killed_copy_up_is_swept(tmp_path):
    from lamina.volumemounts import copy_up

    rootfs = tmp_path / "rootfs"
    (rootfs / "data").mkdir(parents=True)
    (rootfs / "data" / "f").write_text("image")
    vol = tmp_path / "vol"
    (vol / "_data").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = vol / f".copyup-{dead.pid}-00"
    (stale / "half").mkdir(parents=True)
    live = vol / f".copyup-{os.getpid()}-00"  # a copy in progress (its writer lives): left alone
    live.mkdir()
    os.setxattr(rootfs / "data" / "f", "user.lamina", b"kept")
    os.chown(rootfs / "data" / "f", 1234, 5678)
    os.chmod(rootfs / "data", 0o751)
    assert copy_up(str(rootfs), "/data", str(vol / "_data"))
    assert (vol / "_data" / "f").read_text() == "image"
    assert os.getxattr(vol / "_data" / "f", "user.lamina") == b"kept"  # xattrs, owners and modes kept
    assert (os.stat(vol / "_data" / "f").st_uid, os.stat(vol / "_data" / "f").st_gid) == (1234, 5678)
    assert os.stat(vol / "_data").st_mode & 0o7777 == 0o751
    assert sorted(os.listdir(vol)) == sorted(["_data", live.name])
    assert not copy_up(str(rootfs), "/data", str(vol / "_data"))  # not empty: never copied twice


@requires_root
def test_kill_9_of_a_run_rm_front_leaves_no_volume(root):
    import signal
    import time

    from test_cli_core import LAMINA

    named = vname()
    front = subprocess.Popen(LAMINA + ["--root", str(root), "run", "--rm", "-v", "/anon", "-v", f"{named}:/n", "bb:1",
                                       "sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(volumes(root)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1)  # running
    finally:
        front.send_signal(signal.SIGKILL)
        front.wait()
    deadline = time.monotonic() + 30
    while out(lamina(root, "ps", "-aq")).strip():  # the watchdog's reaper removes it (--rm), anonymous volume too
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert volumes(root) == [named]
    assert_nothing_left(root)


@requires_root
def test_tmpfs_volume_is_mounted_in_the_container_only(root):
    v = vname()
    lamina(root, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=10m", v)
    got = json.loads(out(lamina(root, "volume", "inspect", v)))[0]
    assert got["Options"] == {"device": "tmpfs", "o": "size=10m", "type": "tmpfs"}  # docker's shape, keys sorted
    p = run(root, "--rm", "-v", f"{v}:/t", "bb:1", "sh", "-c", "grep ' /t ' /proc/mounts; echo x > /t/x")
    assert out(p).startswith("tmpfs /t tmpfs rw,") and "size=10240k" in out(p)
    assert os.listdir(root / "volumes" / v / "_data") == []  # nothing on the host: a tmpfs lives with its users
    p = lamina(root, "volume", "create", "-o", "type=nfs", "-o", "device=:/x", vname(), check=False)
    assert p.returncode == 1 and "take only type=tmpfs,device=tmpfs" in err(p)
    assert_nothing_left(root)


@requires_root
def test_duplicate_mount_points_as_docker(root):
    v, w = vname(), vname()
    run(root, "--rm", "-v", "/a", "-v", f"{v}:/a", "bb:1", "true")  # docker 20.10: the named one wins, exit 0
    assert volumes(root) == [v]
    p = run(root, "--rm", "-v", f"{v}:/a", "-v", f"{w}:/a", "bb:1", "true", check=False)
    assert (err(p), p.returncode) == ("lamina: Error response from daemon: Duplicate mount point: /a.\n"
                                      "See 'lamina run --help'.", 125)
    assert volumes(root) == [v]  # nothing made for a refused container
    assert_nothing_left(root)
