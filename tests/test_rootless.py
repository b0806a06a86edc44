"""Rootless lamina (issue 16): an ordinary user runs lamina, which enters a user
namespace of its own (lamina/userns.py) mapped to the user's subordinate ids.

Fixtures make real test users (`laminatest-PID`, `laminatest2-PID` with subordinate ids,
`laminatest3-PID` without: this run's own) and remove them, their homes and runtime dirs afterwards; lamina
runs as them through runuser.  The repository's venv python may live under a root-only
directory (pyenv in /root): lamina then runs on the system python of the same version
with the checkout's src on its path, and the test module skips loudly when neither can
be read by another user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, requires_root
from registry_fixtures import free_port, registry, basic_registry  # noqa: F401 - fixtures
from rootless_fixtures import User, python_for_users as _python_for_users, subid_start as _subid_start
from rootless_fixtures import make_user as _make_user, remove_user as _remove_user, run_user

pytestmark = [requires_root, pytest.mark.skipif(shutil.which("newuidmap") is None or shutil.which("runuser") is None,
                                                reason="SKIPPED LOUDLY: newuidmap (uidmap) or runuser missing")]

USER, USER2, NOSUB = run_user("test"), run_user("test2"), run_user("test3")  # this run's own
ROOT_LAMINA = [str(REPO / ".venv" / "bin" / "lamina")]


@pytest.fixture(scope="module")
def users():
    python = _python_for_users()
    if isinstance(python, str):
        pytest.skip(python)
    made = []
    try:
        for name, subids in ((USER, True), (USER2, True), (NOSUB, False)):
            _make_user(name, subids)
            made.append(name)
        yield {name: User(name, python) for name in made}
    finally:
        for name in made:
            _remove_user(name)


@pytest.fixture(scope="module")
def user(users, busybox_tar_module):
    u = users[USER]
    tar = u.file(Path("busybox.tar"), busybox_tar_module)
    u.ok("import", str(tar), "bb:1")
    return u


@pytest.fixture(scope="module")
def busybox_tar_module(tmp_path_factory):
    from conftest import make_busybox_rootfs, make_rootfs_tar

    root = make_busybox_rootfs(tmp_path_factory.mktemp("rl-rootfs"))
    return make_rootfs_tar(root, tmp_path_factory.mktemp("rl-tar") / "busybox.tar")


@pytest.fixture(scope="module")
def root_store(tmp_path_factory, busybox_tar_module):
    """Root's lamina on its own store, with the same busybox image."""
    env = dict(os.environ, LAMINA_ROOT=str(tmp_path_factory.mktemp("rl-root-store") / "store"))
    subprocess.run(ROOT_LAMINA + ["import", str(busybox_tar_module), "bb:1"], env=env, check=True,
                   capture_output=True)

    def run(*args, extra_env=None):
        p = subprocess.run(ROOT_LAMINA + list(args), env=dict(env, **(extra_env or {})), capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout

    return run


def test_run_is_root_inside_and_store_is_the_users(user):
    assert user.ok("run", "--rm", "bb:1", "id", "-u").strip() == "0"
    assert user.ok("run", "--rm", "--network", "none", "bb:1", "id", "-u").strip() == "0"
    assert user.ok("run", "--rm", "--network", "host", "bb:1", "id", "-u").strip() == "0"
    info = user.ok("info")
    assert f"Lamina Root Dir: {user.store}" in info
    assert "Storage Driver: overlay" in info and "Security Options:\n rootless" in info
    assert (user.store / "lamina.db").stat().st_uid == user.uid


def test_chown_in_container_is_subuid_on_host(user):
    user.ok("run", "--name", "rlchown", "--network", "none", "bb:1", "sh", "-c", "echo x > /f && chown 1000:1000 /f")
    cid = user.ok("inspect", "-f", "{{.Id}}", "rlchown").strip()
    try:
        st = (user.store / "containers" / cid / "upper" / "f").stat()
        start = _subid_start(user.name)
        assert (st.st_uid, st.st_gid) == (start + 999, start + 999)
        assert user.ok("diff", cid).split("\n")[0] == "A /f"
    finally:
        user.ok("rm", cid)


def test_diff_commit_and_build_match_root(user, root_store):
    script = "mkdir -p /d/x && echo a > /d/x/a && chown 1000 /d/x/a && rm /bin/ls"
    epoch = {"SOURCE_DATE_EPOCH": "0"}
    outs = {}
    for who, run in (("user", lambda *a: user.ok(*a, env=epoch)), ("root", lambda *a: root_store(*a, extra_env=epoch))):
        run("run", "--name", "rlc", "--network", "none", "bb:1", "sh", "-c", script)
        diff = run("diff", "rlc")
        run("commit", "rlc", "bb:committed")
        layers = run("inspect", "-f", "{{json .RootFS.Layers}}", "bb:committed")
        run("rm", "rlc")
        outs[who] = (diff, layers)
    assert outs["user"] == outs["root"]
    assert "D /bin/ls" in outs["user"][0]

    ctx = user.home / "ctx"
    ctx.mkdir(exist_ok=True)
    # the second RUN replaces a directory: an opaque one (user.overlay.opaque in the user's store)
    (ctx / "Dockerfile").write_text("FROM bb:1\nRUN mkdir -p /d/x && echo a > /d/x/a && chown 1000 /d/x/a\n"
                                    "RUN rm -rf /d && mkdir /d && echo b > /d/b && rm /bin/ls\n")
    os.chown(ctx, user.uid, -1)
    user.ok("build", "-q", "--reproducible", "-t", "bb:built", str(ctx))
    root_store("build", "-q", "--reproducible", "-t", "bb:built", str(ctx))
    mine = json.loads(user.ok("inspect", "-f", "{{json .RootFS.Layers}}", "bb:built"))
    roots = json.loads(root_store("inspect", "-f", "{{json .RootFS.Layers}}", "bb:built"))
    assert len(mine) == 3 and mine == roots
    assert user.ok("run", "--rm", "--network", "none", "bb:built", "busybox", "ls", "/d").split() == ["b"]


def test_push_pull_loopback_registry_with_the_users_credentials(user, registry, basic_registry):  # noqa: F811
    ref = f"{registry.host}/rootless/bb:1"
    user.ok("tag", "bb:1", ref)
    user.ok("push", ref)
    user.ok("rmi", ref)
    user.ok("pull", ref)
    assert user.ok("run", "--rm", "--network", "none", ref, "id", "-u").strip() == "0"

    # credentials: `login` writes the user's ~/.docker/config.json, push reads it there
    private = f"{basic_registry.host}/rootless/bb:1"
    user.ok("tag", "bb:1", private)
    denied = user.lamina("push", private)
    assert denied.returncode != 0
    user.ok("login", "-u", "alice", "-p", "s3cret", basic_registry.host)
    config = json.loads((user.home / ".docker" / "config.json").read_text())
    assert basic_registry.host in config["auths"]
    user.ok("push", private)


def test_publish_unprivileged_port_serves_a_page(user):
    port = free_port()
    name = "rlweb"
    user.ok("run", "-d", "--name", name, "-p", f"{port}:80", "bb:1", "sh", "-c",
            "mkdir /www && echo hello-rootless > /www/index.html && exec httpd -f -p 80 -h /www")
    try:
        deadline, body = time.time() + 10, None
        while time.time() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"hello-rootless\n"
        assert user.ok("port", name) == f"80/tcp -> 0.0.0.0:{port}\n"
        # a later command joins the monitor's namespace: it sees the running container's mount
        assert user.ok("exec", name, "cat", "/www/index.html") == "hello-rootless\n"
    finally:
        user.ok("rm", "-f", name)
    assert not list((user.runtime / "lamina" / "slirp").iterdir())
    assert not list((user.runtime / "lamina" / "netns").iterdir())
    deadline = time.time() + 30
    while any("slirp4netns" in p for p in _live_processes(user.uid)) and time.time() < deadline:
        time.sleep(0.05)
    assert not [p for p in _live_processes(user.uid) if "slirp4netns" in p]


def test_privileged_host_port_is_refused(user):
    start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if start == 0:
        pytest.skip("SKIPPED LOUDLY: net.ipv4.ip_unprivileged_port_start is 0: every port is unprivileged")
    p = user.lamina("run", "--rm", "-p", f"{start - 1}:80", "bb:1", "true")
    assert p.returncode == 125
    errors = [line for line in p.stderr.splitlines() if not line.startswith("WARNING:")]  # runc advisories
    assert errors == [f"lamina: Error response from daemon: cannot expose privileged port {start - 1}, you can add "
                      f"'net.ipv4.ip_unprivileged_port_start={start - 1}' to /etc/sysctl.conf (currently {start}), "
                      f"or choose a larger port number (>= {start})."]


def test_without_subordinate_ids_exit_125_with_the_usermod_command(users):
    p = users[NOSUB].lamina("images")
    assert p.returncode == 125
    assert p.stderr.strip() == (
        f"Error: no subordinate ids for user {NOSUB} in /etc/subuid and /etc/subgid (rootless lamina maps 65536 "
        f"of them): as root run `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {NOSUB}`")


@pytest.mark.skipif(os.path.exists("/sys/fs/cgroup/cgroup.controllers"), reason="SKIPPED LOUDLY: cgroup v2 host")
def test_limit_flag_on_cgroup_v1_is_a_clear_error(user):
    p = user.lamina("run", "--rm", "--memory", "64m", "bb:1", "true")
    assert p.returncode == 125
    assert "--memory: resource limits need a cgroup delegated to your user" in p.stderr
    assert user.ok("ps", "-aq") == ""  # refused before anything was created


def test_stores_are_private_and_roots_untouched(users, user):
    other = users[USER2]
    assert other.ok("images", "-q") == ""
    assert f"Lamina Root Dir: {other.store}" in other.ok("info")
    # the other user cannot look into the first one's store, nor into root's
    assert other.lamina("--root", str(user.store), "images").returncode != 0
    p = user.lamina("--root", "/var/lib/lamina", "images")
    assert p.returncode != 0 or not os.path.exists("/var/lib/lamina")
    # nothing the users did wrote outside their homes and runtime dirs: root's default store
    # has no file of theirs (their ids on the host: their uids and subordinate ranges)
    if os.path.isdir("/var/lib/lamina"):
        mine = {user.uid, other.uid}
        for dirpath, dirnames, filenames in os.walk("/var/lib/lamina"):
            for n in dirnames + filenames:
                try:
                    assert os.lstat(os.path.join(dirpath, n)).st_uid not in mine
                except FileNotFoundError:
                    pass
            if dirpath.count(os.sep) > 4:
                dirnames[:] = []


def test_extraction_escapes_stay_in_the_layer_as_the_user(user):
    """The attack suite's extraction escapes, as the user: a link out of the layer and a
    `..` path must not write into the user's own home (which the namespace's root owns)."""
    import io
    import tarfile

    target = user.home / "pwned"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        link = tarfile.TarInfo("out")
        link.type, link.linkname = tarfile.SYMTYPE, str(user.home)
        t.addfile(link)
        for name in ("out/pwned", "../pwned", "../../pwned"):
            ti = tarfile.TarInfo(name)
            ti.size = 4
            t.addfile(ti, io.BytesIO(b"evil"))
    tar = user.file(Path("escape.tar"), buf.getvalue())
    user.lamina("import", str(tar), "escape:1")
    assert not target.exists()
    assert not (user.home.parent / "pwned").exists()
    assert not (user.store / "pwned").exists()


def test_build_context_link_out_of_the_context_as_the_user(user):
    secret = user.file(Path("secret.txt"), b"the-users-secret\n")
    ctx = user.home / "ctx-link"
    ctx.mkdir(exist_ok=True)
    os.symlink(secret, ctx / "link")
    (ctx / "Dockerfile").write_text("FROM bb:1\nCOPY link /copied\n")
    for p in (ctx, ctx / "Dockerfile"):
        os.chown(p, user.uid, -1)
    os.lchown(ctx / "link", user.uid, -1)
    p = user.lamina("build", "-q", "-t", "bb:link", str(ctx))
    if p.returncode == 0:  # docker copies the link itself, never what it points to on the host
        out = user.lamina("run", "--rm", "--network", "none", "bb:link", "cat", "/copied").stdout
        assert "the-users-secret" not in out


def _live_processes(uid: int) -> list[str]:
    """The user's processes that still run (a zombie is not one: the machine's init may be slow to reap)."""
    out = subprocess.run(["ps", "-u", str(uid), "-o", "stat=,comm="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip() and not line.strip().startswith("Z")]


def test_killed_monitor_leaves_nothing_running(user):
    user.ok("run", "-d", "--name", "rlkill", "-p", f"{free_port()}:80", "bb:1", "sleep", "1000")
    holders = list((user.runtime / "lamina" / "userns").iterdir())
    assert len(holders) == 1
    os.kill(int(holders[0].name.split("-")[0]), 9)
    deadline = time.time() + 30
    while _live_processes(user.uid) and time.time() < deadline:
        time.sleep(0.1)
    assert _live_processes(user.uid) == []  # the watchdog reaped the container; slirp4netns left on its exit-fd
    assert user.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "rlkill").split() == ["exited", "137"]
    assert not list((user.runtime / "lamina" / "userns").iterdir())  # the stale entry went with the next command
    user.ok("rm", "rlkill")
    assert not list((user.runtime / "lamina" / "netns").iterdir())


def test_user_defined_networks_are_refused_clearly(user):
    p = user.lamina("network", "create", "rlnet")
    assert (p.returncode, p.stderr) == (1, "Error response from daemon: a rootless lamina has no user-defined "
                                           "networks: containers use the default (slirp4netns), host or none\n")


def test_copy_driver_fallback_as_the_user(users, busybox_tar_module, tmp_path):
    """Where overlayfs cannot be mounted in the namespace the copy driver is chosen (here
    forced): the same commands, and per driver the same layer as root's (the two drivers
    write a replaced directory differently, as root too)."""
    other = users[USER2]
    tar = other.file(Path("busybox.tar"), busybox_tar_module)
    epoch = {"SOURCE_DATE_EPOCH": "0"}
    script = "rm -rf /usr && mkdir /usr && echo x > /usr/x && chown 1000 /usr/x"
    for driver in ("copy", "overlay"):
        flags = ["--root", str(other.home / f"store-{driver}"), "--storage-driver", driver]
        other.ok(*flags, "import", str(tar), "bb:1")
        assert f"Storage Driver: {driver}" in other.ok(*flags, "info")
        other.ok(*flags, "run", "--name", "rlcopy", "--network", "none", "bb:1", "sh", "-c", script)
        other.ok(*flags, "commit", "rlcopy", "bb:c", env=epoch)
        mine = other.ok(*flags, "inspect", "-f", "{{json .RootFS.Layers}}", "bb:c")
        assert other.ok(*flags, "run", "--rm", "--network", "none", "bb:c", "busybox", "ls", "/usr").split() == ["x"]

        root = ROOT_LAMINA + ["--root", str(tmp_path / driver), "--storage-driver", driver]
        for args in (["import", str(busybox_tar_module), "bb:1"],
                     ["run", "--name", "rlcopy", "--network", "none", "bb:1", "sh", "-c", script],
                     ["commit", "rlcopy", "bb:c"]):
            subprocess.run(root + args, check=True, capture_output=True, env=dict(os.environ, **epoch))
        roots = subprocess.run(root + ["inspect", "-f", "{{json .RootFS.Layers}}", "bb:c"], check=True,
                               capture_output=True, text=True).stdout
        assert mine == roots, driver


def test_concurrent_commands_share_one_namespace(user):
    """Two `run -d` started together end up in one namespace: a later `exec` sees both."""
    import concurrent.futures

    names = ["rlpar1", "rlpar2"]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda n: user.ok("run", "-d", "--name", n, "--network", "none", "bb:1", "sleep", "100"),
                          names))
        inodes = {p.name.split("-")[1] for p in (user.runtime / "lamina" / "userns").iterdir()}
        assert len(inodes) == 1
        for n in names:
            assert user.ok("exec", n, "cat", "/proc/1/cmdline") == "sleep\x00100\x00"
    finally:
        user.ok("rm", "-f", *names)
