"""Attacks through what the CLI prints, the runtime it trusts, the pre-start command
check and the tar reader (issue 8: Low 11 NUL bytes, 12, 14, 15), on real parts.

Low 12: image-supplied strings (Cmd, labels, history comments, file names) must
not reach the terminal raw; `ps` COMMAND is Go's %q exactly as the docker CLI
prints it.  Low 11: a NUL byte in Entrypoint/Cmd/Env/WorkingDir is a one-line
error (docker: 125 with runc's text), never `ValueError: embedded null byte`.
Low 14: a runc without the container-escape fixes is named on `run`, `version`
and `info`, counting Debian backports, and the answer is cached per binary.
Low 15: a command that exists only on a `-v` mount runs (runc looks after
mounting), resolved in the container only; GNU sparse tars (PAX 0.0/0.1/1.0,
old GNU) import, and hostile sparse maps are refused.

The cases on the `store` fixture (listings, diff names, NUL bytes, commands on -v mounts,
hostile sparse imports) run twice: lamina as root and as a rootless test user (issue 16,
rootless_fixtures), with nothing written outside the user's store.  The others stay root's:
apply_layer in-process (sparse maps), the runc advisory cache (a probe of root's runtime
binary, not an escape), and the GNU sparse imports (a format check, the same code as root).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import is_root, make_busybox_rootfs, requires_root
from lamina.archive.extract import apply_layer
from lamina.errors import InvalidArchive
from rootless_fixtures import attack_user, bb_tar, confined, runner, store  # noqa: F401 - pytest fixtures
from rootless_fixtures import Store

LAMINA = [sys.executable, "-m", "lamina"]


def lamina(root, *args, check=True, timeout=180, env=None):
    """On a Store (the cases parametrised root | rootless, rootless_fixtures) or a path (root)."""
    if isinstance(root, Store):
        return root.lamina(*args, check=check, timeout=timeout, env=env)
    cmd = LAMINA + ["--root", str(root)] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout!r}\n{p.stderr!r}")
    return p


def text(p) -> str:
    return p.stdout.decode("utf-8")


def errtext(p) -> str:
    return p.stderr.decode("utf-8")


def system_check(root) -> None:
    p = lamina(root, "system", "check", check=False)
    assert p.returncode == 0 and text(p).strip().endswith("ok"), text(p) + errtext(p)


def one_line_error(p, code: int, needle: str) -> None:
    """Exit `code` and one error line naming `needle` (beside `run`'s runtime WARNING, if any)."""
    err = errtext(p)
    assert p.returncode == code, (p.returncode, err)
    lines = [line for line in err.splitlines() if not line.startswith("WARNING: ")]
    assert "Traceback" not in err and err.endswith("\n") and len(lines) == 1, err
    assert needle in lines[0], err


def docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


requires_docker = pytest.mark.skipif(not (is_root() and docker_works()), reason="SKIPPED LOUDLY: no docker here")


def docker(*args, check=True, timeout=180):
    p = subprocess.run(["docker", *map(str, args)], capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {args} exited {p.returncode}: {p.stderr!r}")
    return p


# =========================================================================== Low 12: terminal escapes

ESC_CMD = ["/bin/ec ho", "\x1b[31mred\x07bell\x9bX\x7fdel\\back\"q", "tab\there", "nl\nx", "\u2028ls\u202e", "é…"]
ESC_COMMENT = "\x1b[2Jcomment\x07bell"
ESC_LABEL = "\x1b]0;pwned\x07label"
# What the docker CLI prints for this Cmd (seen on this machine: `docker ps --no-trunc --format {{.Command}}`).
DOCKER_COMMAND = '"/bin/ec ho \\x1b[31mred\\abell\\u009bX\\x7fdel\\\\back\\"q tab\\there nl\\nx \\u2028ls\\u202e é…"'
DOCKER_COMMAND_TRUNC = '"/bin/ec ho \\x1b[31mred…"'


def terminal_safe(output: str) -> bool:
    """Nothing that drives a terminal: only printable characters and newlines."""
    return all(ch == "\n" or ch.isprintable() for ch in output)


def json_safe(output: str) -> bool:
    """JSON output: no C0 control but the newlines of indentation, no DEL, no C1."""
    return not any((ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F for ch in output)


@pytest.fixture
def esc_store(store, bb_tar):
    root, busybox_tar = store, bb_tar
    changes = ["-c", "CMD " + json.dumps(ESC_CMD), "-c", f'LABEL esc="{ESC_LABEL}"']
    lamina(root, "import", *changes, "-m", ESC_COMMENT, busybox_tar, "esc:1")
    lamina(root, "create", "--name", "esc", "esc:1")
    return root


@requires_root
def test_listings_escape_what_the_image_says(esc_store):
    root = esc_store
    command = text(lamina(root, "ps", "-a", "--no-trunc", "--format", "{{.Command}}")).strip()
    assert command == DOCKER_COMMAND
    ps = text(lamina(root, "ps", "-a"))
    assert DOCKER_COMMAND_TRUNC in ps and terminal_safe(ps)

    history = text(lamina(root, "history", "esc:1"))
    assert "\\x1b[2Jcomment\\abell" in history and terminal_safe(history)
    for flags in ((), ("--no-trunc",), ("--format", "{{.Comment}}|{{.CreatedBy}}")):
        assert terminal_safe(text(lamina(root, "history", *flags, "esc:1")))
    for flags in ((), ("--no-trunc", "--digests"), ("--format", "{{json .}}"), ("--format", "{{.Repository}}")):
        assert terminal_safe(text(lamina(root, "images", *flags)))

    label = text(lamina(root, "inspect", "-f", "{{.Config.Labels.esc}}", "esc:1"))
    assert label == "\\x1b]0;pwned\\alabel\n"
    cmd_json = text(lamina(root, "inspect", "-f", "{{json .Config.Cmd}}", "esc:1")).strip()
    assert json_safe(cmd_json) and json.loads(cmd_json) == ESC_CMD
    # Go's encoding/json text, except that DEL and C1 are escaped too (same JSON value)
    assert cmd_json == ('["/bin/ec ho","\\u001b[31mred\\u0007bell\\u009bX\\u007fdel\\\\back\\"q","tab\\there",'
                        '"nl\\nx","\\u2028ls\u202e","é…"]')
    for name in ("esc:1", "esc"):
        doc = text(lamina(root, "inspect", name))
        assert json_safe(doc)
        item = json.loads(doc)[0]
        assert item["Config"]["Cmd"] == ESC_CMD and item["Config"]["Labels"]["esc"] == ESC_LABEL
    assert json.loads(text(lamina(root, "inspect", "esc:1")))[0]["Comment"] == ESC_COMMENT
    system_check(root)


def test_error_messages_escape_what_they_quote(tmp_path):
    """An error names the object the user or an image gave: its control characters are
    escaped as in listings, so an error cannot drive the terminal either."""
    p = lamina(tmp_path / "store", "diff", "x\x1b]0;pwned\x07\x1b[2Jy", check=False)
    err = errtext(p)
    assert p.returncode == 1 and "\x1b" not in err and "\x07" not in err, err
    assert err == "Error response from daemon: No such container: x\\x1b]0;pwned\\a\\x1b[2Jy\n", err


@requires_root
def test_diff_escapes_file_names_made_in_the_container(store, bb_tar):
    root, busybox_tar = store, bb_tar
    lamina(root, "import", busybox_tar, "bb:1")
    lamina(root, "run", "--name", "dd", "bb:1", "sh", "-c", "touch \"/tmp/$(printf '\\033]0;pwned\\007')\"")
    diff = text(lamina(root, "diff", "dd"))
    assert "A /tmp/\\x1b]0;pwned\\a" in diff and terminal_safe(diff)
    system_check(root)


@requires_docker
def test_ps_command_is_what_docker_prints(esc_store, busybox_tar):
    tag = f"lamina-h5-esc-{uuid.uuid4().hex[:8]}"
    docker("import", "-c", "CMD " + json.dumps(ESC_CMD), busybox_tar, tag)
    cid = text(docker("create", tag)).strip()
    try:
        theirs = text(docker("ps", "-a", "--no-trunc", "--filter", f"id={cid}", "--format", "{{.Command}}")).strip()
        ours = text(lamina(esc_store, "ps", "-a", "--no-trunc", "--format", "{{.Command}}")).strip()
        assert ours == theirs == DOCKER_COMMAND
        theirs_cmd = json.loads(text(docker("inspect", "-f", "{{json .Config.Cmd}}", tag)))
        assert theirs_cmd == json.loads(text(lamina(esc_store, "inspect", "-f", "{{json .Config.Cmd}}", "esc:1")))
    finally:
        docker("rm", "-f", cid, check=False)
        docker("rmi", "-f", tag, check=False)


# =========================================================================== Low 11: NUL bytes


def docker_save_archive(out: Path, layer_tar: Path, tag: str, config: dict) -> Path:
    """A docker-save (legacy layout) archive of one layer with the given container config."""
    layer = layer_tar.read_bytes()
    full = {
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z", "config": config,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "test"}],
    }
    raw = json.dumps(full).encode()
    name = hashlib.sha256(raw).hexdigest() + ".json"
    manifest = json.dumps([{"Config": name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]).encode()
    with tarfile.open(out, "w") as tf:
        for member, data in ((name, raw), ("layer/layer.tar", layer), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(member)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return out


@requires_root
def test_nul_bytes_in_the_process_config_are_one_line_errors(tmp_path, store, bb_tar):
    root, busybox_tar = store, bb_tar
    cases = {
        "nul:argv0": ('CMD ["/bin/ec\\u0000ho","x"]', 'exec: "/bin/ec\\x00ho": stat /bin/ec\\x00ho: invalid argument'),
        "nul:entry": ('ENTRYPOINT ["/bin/ec\\u0000ho"]', 'exec: "/bin/ec\\x00ho": stat /bin/ec\\x00ho: invalid argument'),
        "nul:arg": ('CMD ["/bin/echo","a\\u0000b"]', 'argument "a\\x00b" contains a NUL byte'),
    }
    for tag, (change, _) in cases.items():
        lamina(root, "import", "-c", change, busybox_tar, tag)
    config = {"Env": ["PATH=/bin", "A=x\x00y"], "Cmd": ["/bin/true"]}
    lamina(root, "load", "-i", docker_save_archive(tmp_path / "env.tar", busybox_tar, "nul:env", config))
    cases["nul:env"] = (None, 'environment variable value can\'t contain null(\\x00): "A=x\\x00y"')
    for tag, (_, message) in cases.items():
        one_line_error(lamina(root, "run", "--rm", tag, check=False), 125, message)
    # from flags: an --env-file line with a NUL byte (docker: runc refuses it, 125)
    env_file = tmp_path / "env"
    env_file.write_bytes(b"X\x00Y=ab\n")
    one_line_error(lamina(root, "run", "--rm", "--env-file", env_file, "nul:arg", "/bin/true", check=False), 125,
                   'environment variable name can\'t contain null(\\x00): "X\\x00Y=ab"')
    # the listings show these images without choking on the byte
    assert terminal_safe(text(lamina(root, "history", "nul:argv0"))) and json_safe(text(lamina(root, "inspect", "nul:env")))
    system_check(root)


@requires_root
def test_nul_byte_in_the_working_dir_is_a_one_line_error(tmp_path, store, bb_tar):
    root, busybox_tar = store, bb_tar
    config = {"WorkingDir": "/tm\x00p", "Cmd": ["/bin/true"]}
    lamina(root, "load", "-i", docker_save_archive(tmp_path / "wd.tar", busybox_tar, "nul:wd", config))
    # docker: 125, "lstat <its rootfs>/tm\x00p: invalid argument"
    one_line_error(lamina(root, "run", "--rm", "nul:wd", check=False), 125,
                   'the working directory "/tm\\x00p" is invalid: it contains a NUL byte')
    system_check(root)


# =========================================================================== Low 14: runc advisories


def test_advisories_judge_upstream_versions():
    from lamina.runtime import advisories

    def missing(version):
        warning = advisories.assess("runc", "/nonexistent/runc", version)["warning"]
        return [c for c, _ in advisories.ADVISORIES["runc"] if warning and c in warning]

    every = [c for c, _ in advisories.ADVISORIES["runc"]]
    assert missing("1.0.0-rc6") == every
    assert missing("1.0.0~rc93+ds1") == every[1:]
    assert missing("1.1.12") == missing("1.2.7") == missing("1.3.2") == missing("1.4.0-rc.2") == every[2:]
    for fixed in ("1.2.8", "1.3.3", "1.4.0-rc.3", "1.4.0", "1.5.0"):
        assert missing(fixed) == [], fixed
    assert advisories.assess("runc", "/x", "unknown") == {"warning": None, "note": None}


def test_a_cve_of_a_build_feature_counts_only_for_builds_with_it(tmp_path, monkeypatch):
    from lamina.runtime import advisories

    monkeypatch.setattr(advisories, "_debian_package", lambda path: None)
    crun = tmp_path / "crun"
    for features, warned in (("+SYSTEMD +SELINUX +SECCOMP +YAJL", False), ("+SYSTEMD +LIBKRUN +YAJL", True)):
        crun.write_text(f"#!/bin/sh\necho 'crun version 1.8.1'\necho 'spec: 1.0.0'\necho '{features}'\n")
        crun.chmod(0o755)
        warning = advisories.assess("crun", str(crun), "1.8.1")["warning"]
        assert ("CVE-2025-24965" in (warning or "")) is warned, (features, warning)
    assert advisories.assess("crun", str(crun), "1.20")["warning"] is None


def test_a_debian_backport_is_recognised_not_cried_wolf(monkeypatch):
    from lamina.runtime import advisories

    monkeypatch.setattr(advisories, "_debian_package", lambda path: ("runc", "1.1.5+ds1-1+deb12u1"))
    monkeypatch.setattr(advisories, "_changelog_text", lambda pkg: "  * CVE-2024-21626: leaked fds\n")
    warning = advisories.assess("runc", "/usr/sbin/runc", "1.1.5+ds1")["warning"]
    assert "CVE-2024-21626" not in warning.split(";")[0] and "backports only CVE-2024-21626" in warning
    assert "CVE-2025-31133" in warning and "\n" not in warning
    everything = " ".join(c for c, _ in advisories.ADVISORIES["runc"])
    monkeypatch.setattr(advisories, "_changelog_text", lambda pkg: everything)
    verdict = advisories.assess("runc", "/usr/sbin/runc", "1.1.5+ds1")
    assert verdict["warning"] is None and "Debian's runc 1.1.5+ds1-1+deb12u1 backports" in verdict["note"]


@pytest.mark.skipif(shutil.which("runc") is None or shutil.which("dpkg-query") is None,
                    reason="SKIPPED LOUDLY: no runc or dpkg here")
def test_installed_debian_runc_is_read_from_its_package():
    from lamina.runtime import advisories

    runc = shutil.which("runc")
    package = advisories._debian_package(runc)
    if package is None:
        pytest.skip("SKIPPED LOUDLY: runc here is not from a Debian package")
    changelog = advisories._changelog_text(package[0])
    version = subprocess.run([runc, "--version"], capture_output=True, text=True).stdout.split()[2]
    warning = advisories.assess("runc", runc, version)["warning"] or ""
    for cve, _ in advisories.ADVISORIES["runc"]:
        if cve in changelog:  # Debian 12: CVE-2024-21626 is backported into 1.1.5+ds1-1+deb12u1
            assert cve not in warning.split(";")[0], (cve, warning)


@pytest.fixture
def old_runc(tmp_path):
    """A runc that says it is 1.0.0-rc6 (and logs each --version probe); the real one does the work."""
    real = shutil.which("runc")
    if real is None:
        pytest.skip("SKIPPED LOUDLY: runc not installed")
    log = tmp_path / "probes"
    wrapper = tmp_path / "bin" / "runc"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo probe >> {log}; '
                       f'echo "runc version 1.0.0-rc6"; exit 0; fi\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


@requires_root
def test_old_runc_is_named_on_run_version_and_info_and_probed_once(tmp_path, busybox_tar, old_runc):
    wrapper, log = old_runc
    root = tmp_path / "store"
    lamina(root, "import", busybox_tar, "bb:1")
    expected = "WARNING: runc 1.0.0-rc6 lacks the fixes for container escapes CVE-2019-5736, CVE-2024-21626,"
    p = lamina(root, "--runtime", wrapper, "version")
    assert "1.0.0-rc6" in text(p) and errtext(p).startswith(expected) and errtext(p).count("\n") == 1
    p = lamina(root, "--runtime", wrapper, "info")
    assert "runc version: 1.0.0-rc6" in text(p) and errtext(p).startswith(expected) and errtext(p).count("\n") == 1
    for _ in range(3):
        p = lamina(root, "--runtime", wrapper, "run", "--rm", "bb:1", "true")
        assert errtext(p).startswith(expected) and errtext(p).count("\n") == 1
    assert log.read_text().count("probe") == 1  # cached per binary: `run` spawns no probe
    facts = json.loads((root / "runtime" / "facts.json").read_text())
    st = wrapper.stat()
    assert facts[f"{wrapper}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"]["version"] == "1.0.0-rc6"
    # an upgraded binary is a new cache key: judged again
    wrapper.write_text(wrapper.read_text().replace("1.0.0-rc6", "1.4.0"))
    p = lamina(root, "--runtime", wrapper, "run", "--rm", "bb:1", "true")
    assert errtext(p) == ""
    system_check(root)


# =========================================================================== Low 15: commands on -v mounts


@pytest.fixture
def bind_store(tmp_path, store, bb_tar):
    root, busybox_tar = store, bb_tar
    lamina(root, "import", busybox_tar, "bb:1")
    hostbin = tmp_path / "hostbin"
    hostbin.mkdir()
    (hostbin / "tool").write_text('#!/bin/sh\necho tool-ran "$@"\n')
    (hostbin / "tool").chmod(0o755)
    # A host-only executable, and a link to it inside the mount: in the container the
    # link's absolute target does not exist, so it must not be found.
    host_only = tmp_path / "host-only"
    host_only.mkdir()
    (host_only / "secret").write_text("#!/bin/sh\necho host\n")
    (host_only / "secret").chmod(0o755)
    (hostbin / "escape").symlink_to(host_only / "secret")
    (hostbin / "echo").symlink_to("/bin/busybox")  # absolute: the image's busybox (applet by name)
    return root, hostbin


@requires_root
def test_a_command_on_a_bind_mount_runs(bind_store):
    root, hostbin = bind_store
    v = f"{hostbin}:/opt/bin"
    assert text(lamina(root, "run", "--rm", "-v", v, "bb:1", "/opt/bin/tool", "a")) == "tool-ran a\n"
    assert text(lamina(root, "run", "--rm", "-v", f"{hostbin}:/usr/local/bin", "bb:1", "tool", "b")) == "tool-ran b\n"
    assert text(lamina(root, "run", "--rm", "-v", v, "-w", "/opt/bin", "bb:1", "./tool", "c")) == "tool-ran c\n"
    assert text(lamina(root, "run", "--rm", "-v", f"{hostbin / 'tool'}:/usr/bin/tool2", "bb:1", "tool2")) == "tool-ran\n"
    # `..` at the mount's top is the container's /opt, not the host's parent of hostbin
    assert text(lamina(root, "run", "--rm", "-v", v, "bb:1", "/opt/bin/../bin/tool", "d")) == "tool-ran d\n"
    # links inside the mount resolve in the container
    assert text(lamina(root, "run", "--rm", "-v", v, "bb:1", "/opt/bin/echo", "e")) == "e\n"
    p = lamina(root, "run", "--rm", "-v", v, "bb:1", "/opt/bin/escape", check=False)
    one_line_error(p, 127, 'exec: "/opt/bin/escape": stat /opt/bin/escape: no such file or directory')
    system_check(root)


@requires_docker
def test_bind_mount_commands_match_docker(bind_store, busybox_tar):
    root, hostbin = bind_store
    tag = f"lamina-h5-bind-{uuid.uuid4().hex[:8]}"
    docker("import", busybox_tar, tag)
    try:
        for argv in (["/opt/bin/tool", "a"], ["/opt/bin/echo", "e"], ["/opt/bin/escape"]):
            theirs = docker("run", "--rm", "-v", f"{hostbin}:/opt/bin", tag, *argv, check=False)
            ours = lamina(root, "run", "--rm", "-v", f"{hostbin}:/opt/bin", "bb:1", *argv, check=False)
            assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), argv
    finally:
        docker("rmi", "-f", tag, check=False)


# =========================================================================== Low 15: GNU sparse tars


def sparse_rootfs(path: Path) -> dict[str, bytes]:
    make_busybox_rootfs(path)
    made = {}
    for name, regions, size in (("sparse.bin", [(0, b"A" * 5000), (1 << 20, b"B" * 100), ((3 << 20) + 7, b"C" * 3)],
                                 (5 << 20) + 1), ("allhole.bin", [], 1 << 20)):
        fd = os.open(path / name, os.O_WRONLY | os.O_CREAT, 0o644)
        for offset, data in regions:
            os.pwrite(fd, data, offset)
        os.ftruncate(fd, size)
        os.close(fd)
        made[name] = (path / name).read_bytes()
    return made


GNU_TAR_FORMATS = {
    "pax-1.0-default": ["--format=pax"],
    "pax-0.0": ["--format=pax", "--sparse-version=0.0"],
    "pax-0.1": ["--format=pax", "--sparse-version=0.1"],
    "old-gnu": ["--format=gnu"],
}


@requires_root
@pytest.mark.skipif(shutil.which("tar") is None, reason="SKIPPED LOUDLY: no GNU tar")
@pytest.mark.parametrize("fmt", sorted(GNU_TAR_FORMATS))
def test_gnu_sparse_tarballs_import(tmp_path, fmt):
    rootfs = tmp_path / "rootfs"
    made = sparse_rootfs(rootfs)
    tarball = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", *GNU_TAR_FORMATS[fmt], "-C", rootfs, "-cf", tarball, "."], check=True)
    root = tmp_path / "store"
    lamina(root, "import", tarball, "sp:1")
    for name, data in made.items():
        out = text(lamina(root, "run", "--rm", "sp:1", "sh", "-c", f"md5sum /{name}; stat -c %s:%b /{name}"))
        digest, sizes = out.split("\n")[0].split()[0], out.split("\n")[1]
        assert digest == hashlib.md5(data).hexdigest()
        size, blocks = map(int, sizes.split(":"))
        assert size == len(data) and blocks * 512 < 64 * 1024  # the holes stay holes
    system_check(root)


def pax_records(records: list[tuple[str, str]]) -> bytes:
    out = b""
    for key, value in records:
        body = f"{key}={value}".encode()
        size = len(body) + 2
        size += len(str(size))
        size = len(b"%d %s\n" % (size, body))
        out += b"%d %s\n" % (size, body)
    return out


def pax_sparse_tar(name: str, records: list[tuple[str, str]], data: bytes) -> bytes:
    """One regular entry `name` carrying `data`, behind a PAX header with `records`
    (repeats allowed, as GNU sparse 0.0 needs), then the end of archive."""
    body = pax_records(records)
    x = tarfile.TarInfo("PaxHeaders/" + name.split("/")[-1])
    x.type, x.size = tarfile.XHDTYPE, len(body)
    f = tarfile.TarInfo(name)
    f.size = len(data)
    pad = lambda b: b + bytes(-len(b) % 512)  # noqa: E731
    return (x.tobuf(tarfile.USTAR_FORMAT) + pad(body) + f.tobuf(tarfile.USTAR_FORMAT) + pad(data) + bytes(1024))


def old_gnu_sparse_tar(name: str, regions: list[tuple[int, int]], realsize: int, data: bytes,
                       *, extension_blocks: int | None = None) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size = tarfile.GNUTYPE_SPARSE, len(data)
    header = bytearray(ti.tobuf(tarfile.GNU_FORMAT))
    for i, (offset, length) in enumerate(regions[:4]):
        header[386 + 24 * i : 410 + 24 * i] = b"%011o\0%011o\0" % (offset, length)
    header[483:495] = b"%011o\0" % realsize
    extra = b""
    if extension_blocks:
        header[482] = 1
        block = bytearray(512)
        block[0:24] = b"%011o\0%011o\0" % (0, 0)
        block[504] = 1
        extra = bytes(block) * extension_blocks
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + extra + data + bytes(-len(data) % 512) + bytes(1024)


def one_zero_map(count: str) -> bytes:
    return f"{count}\n".encode() + bytes(511 - len(count))


HOSTILE = {
    "1.0 count of 10^18": (pax_sparse_tar("GNUSparseFile.1/f", [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                                                                ("GNU.sparse.name", "f"), ("GNU.sparse.realsize", "9")],
                                           one_zero_map("1000000000000000000") + b"1" * (2 << 20)),
                           "sparse map is larger than"),
    "1.0 map without newlines": (pax_sparse_tar("f", [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                                                      ("GNU.sparse.realsize", "9")], b"7" * (3 << 20)),
                                 "sparse map is larger than"),
    "1.0 overlapping regions": (pax_sparse_tar("f", [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                                                     ("GNU.sparse.realsize", "100")],
                                               (b"2\n0\n10\n5\n10\n").ljust(512, b"\0") + b"x" * 20),
                                "overlap, are out of order"),
    "1.0 region past the end": (pax_sparse_tar("f", [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                                                     ("GNU.sparse.realsize", "10")],
                                               (b"1\n5\n10\n").ljust(512, b"\0") + b"x" * 10),
                                "end past the file's size 10"),
    "1.0 more data claimed than stored": (pax_sparse_tar("f", [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                                                               ("GNU.sparse.realsize", "1000")],
                                                         (b"1\n0\n900\n").ljust(512, b"\0") + b"x" * 10),
                                          "describes 900 bytes of data but 10 are stored"),
    "1.0 negative number": (pax_sparse_tar("f", [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                                                 ("GNU.sparse.realsize", "10")], (b"1\n-1\n5\n").ljust(512, b"\0")),
                            "invalid number '-1'"),
    "0.0 records out of order": (pax_sparse_tar("f", [("GNU.sparse.size", "10"), ("GNU.sparse.numblocks", "1"),
                                                      ("GNU.sparse.numbytes", "5"), ("GNU.sparse.offset", "0")],
                                                b"x" * 5), "GNU sparse records out of order"),
    "0.1 count mismatch": (pax_sparse_tar("f", [("GNU.sparse.size", "10"), ("GNU.sparse.numblocks", "3"),
                                                ("GNU.sparse.map", "0,5")], b"x" * 5), "2 numbers for 3 regions"),
    "0.1 huge real size in range": (pax_sparse_tar("f", [("GNU.sparse.size", "99999999999999999999"),
                                                         ("GNU.sparse.numblocks", "1"), ("GNU.sparse.map", "0,5")],
                                                   b"x" * 5), "invalid number"),
    "unknown version": (pax_sparse_tar("f", [("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")], b""),
                        "unsupported GNU sparse format 2.0"),
    "old GNU endless extension blocks": (old_gnu_sparse_tar("f", [(0, 5)], 10, b"x" * 5, extension_blocks=3000),
                                         "sparse map larger than 1 MiB"),
    "old GNU overlapping": (old_gnu_sparse_tar("f", [(0, 5), (2, 5)], 10, b"x" * 10), "overlap, are out of order"),
}


@requires_root
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_sparse_maps_are_refused(tmp_path, case):
    data, message = HOSTILE[case]
    target = tmp_path / "root"
    target.mkdir()
    t = time.monotonic()
    with pytest.raises(InvalidArchive, match=re.escape(message)) as err:
        apply_layer(io.BytesIO(data), str(target), overlay_whiteouts=False)
    assert "\n" not in str(err.value) and time.monotonic() - t < 5


@requires_root
def test_hostile_sparse_import_leaves_a_sound_store(tmp_path, store, bb_tar):
    root, busybox_tar = store, bb_tar
    lamina(root, "import", busybox_tar, "bb:1")
    for case in ("1.0 count of 10^18", "old GNU endless extension blocks", "1.0 more data claimed than stored"):
        bad = tmp_path / "bad.tar"
        bad.write_bytes(HOSTILE[case][0])
        p = lamina(root, "import", bad, "bad:1", check=False)
        assert p.returncode != 0
        one_line_error(p, p.returncode, HOSTILE[case][1])
    system_check(root)


@requires_root
def test_sparse_entries_are_confined_and_exact(tmp_path):
    target = tmp_path / "root"
    target.mkdir()
    link = tarfile.TarInfo("up")
    link.type, link.linkname = tarfile.SYMTYPE, "../.."
    records = [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.realsize", "20"),
               ("GNU.sparse.name", "up/escaped")]
    stream = link.tobuf(tarfile.USTAR_FORMAT) + pax_sparse_tar("GNUSparseFile.9/x", records,
                                                               (b"2\n0\n3\n17\n3\n").ljust(512, b"\0") + b"abcxyz")
    apply_layer(io.BytesIO(stream), str(target), overlay_whiteouts=False)
    # `up` is clamped to the root, like any other entry's parent
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()
    assert (target / "escaped").read_bytes() == b"abc" + bytes(14) + b"xyz"
    # old GNU with a region at offset 0 (CPython's own reader drops it)
    target2 = tmp_path / "root2"
    target2.mkdir()
    apply_layer(io.BytesIO(old_gnu_sparse_tar("g", [(0, 4), (8, 2)], 12, b"headtl")), str(target2),
                overlay_whiteouts=False)
    assert (target2 / "g").read_bytes() == b"head" + bytes(4) + b"tl" + bytes(2)


@requires_docker
def test_sparse_tarball_imports_as_docker_imports_it(tmp_path):
    rootfs = tmp_path / "rootfs"
    made = sparse_rootfs(rootfs)
    tarball = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=pax", "-C", rootfs, "-cf", tarball, "."], check=True)
    tag = f"lamina-h5-sparse-{uuid.uuid4().hex[:8]}"
    docker("import", tarball, tag)
    root = tmp_path / "store"
    lamina(root, "import", tarball, "sp:1")
    try:
        for name, data in made.items():
            theirs = text(docker("run", "--rm", tag, "md5sum", f"/{name}")).split()[0]
            ours = text(lamina(root, "run", "--rm", "sp:1", "md5sum", f"/{name}")).split()[0]
            assert ours == theirs == hashlib.md5(data).hexdigest()
    finally:
        docker("rmi", "-f", tag, check=False)
