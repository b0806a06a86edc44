"""In-root resolution, users and executables, checked against what docker 20.10 + runc 1.1 do.

Expected values in the tables were taken from the real docker on the dev VM
(`docker run -u SPEC busybox-imported id`, config.json `process.user`).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from lamina.errors import (
    ContainerCommandNotExecutable,
    ContainerCommandNotFound,
    LaminaError,
    RuntimeFailure,
)
from lamina.runtime.rootfs import (
    MAX_DB_FILE,
    DEFAULT_PATH,
    UserIds,
    find_executable,
    lookup_user,
    resolve_in_root,
    resolved_workdir_is_proc,
)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    for d in ("etc", "bin", "usr/bin", "data/sub", "proc"):
        (r / d).mkdir(parents=True)
    return r


# --------------------------------------------------------------------------- resolve_in_root


def test_resolve_plain_and_missing(root: Path) -> None:
    assert resolve_in_root(str(root), "/etc") == f"{root}/etc"
    assert resolve_in_root(str(root), "/") == str(root)
    assert resolve_in_root(str(root), "") == str(root)
    assert resolve_in_root(str(root), "/no/such/thing") == f"{root}/no/such/thing"
    assert resolve_in_root(str(root), "relative/x") == f"{root}/relative/x"


def test_dotdot_never_climbs_above_root(root: Path) -> None:
    assert resolve_in_root(str(root), "/../../../etc/passwd") == f"{root}/etc/passwd"
    assert resolve_in_root(str(root), "/data/sub/../../..") == str(root)


def test_absolute_symlink_is_rerooted(root: Path) -> None:
    os.symlink("/etc", root / "data/link")
    os.symlink("/", root / "data/toroot")
    assert resolve_in_root(str(root), "/data/link/passwd") == f"{root}/etc/passwd"
    assert resolve_in_root(str(root), "/data/toroot/../..") == str(root)


def test_relative_symlink_escape_is_clamped(root: Path) -> None:
    os.symlink("../../../../../../../../etc/shadow", root / "data/sub/evil")
    assert resolve_in_root(str(root), "/data/sub/evil") == f"{root}/etc/shadow"


def test_final_component_is_resolved(root: Path) -> None:
    (root / "etc/real").write_text("x")
    os.symlink("real", root / "etc/alias")
    os.symlink("/etc/alias", root / "bin/double")
    assert resolve_in_root(str(root), "/bin/double") == f"{root}/etc/real"


def test_symlink_loop_is_eloop(root: Path) -> None:
    os.symlink("b", root / "data/a")
    os.symlink("a", root / "data/b")
    with pytest.raises(OSError) as e:
        resolve_in_root(str(root), "/data/a")
    assert e.value.errno == errno.ELOOP


def test_link_through_file_is_kept_literal(root: Path) -> None:
    (root / "etc/file").write_text("x")
    assert resolve_in_root(str(root), "/etc/file/x") == f"{root}/etc/file/x"


def test_workdir_into_proc_through_symlink(root: Path) -> None:
    os.symlink("/proc/self/fd/7", root / "work")
    os.symlink("../proc", root / "data/p")
    assert resolved_workdir_is_proc(str(root), "/work")
    assert resolved_workdir_is_proc(str(root), "/data/p/1")
    assert resolved_workdir_is_proc(str(root), "/proc")
    assert not resolved_workdir_is_proc(str(root), "/data")
    assert not resolved_workdir_is_proc(str(root), "/procfoo")


# --------------------------------------------------------------------------- lookup_user

# (spec, uid, gid, additional gids) as docker 20.10 wrote them for the busybox fixture.
DOCKER_USERS = [
    ("", 0, 0, (0,)),
    ("root", 0, 0, (0,)),
    ("root:root", 0, 0, (0,)),
    ("app", 1000, 1000, (1000, 50)),
    ("app:", 1000, 1000, (1000, 50)),
    ("1000", 1000, 1000, (1000, 50)),
    ("app:staff", 1000, 50, (50,)),
    ("1000:50", 1000, 50, (50,)),
    ("1000:1000", 1000, 1000, (1000,)),
    ("0:50", 0, 50, (50,)),
    (":50", 0, 50, (50,)),
    ("4242", 4242, 0, (0,)),
    ("4242:4242", 4242, 4242, (4242,)),
    ("daemon", 1, 1, (1,)),
    ("2147483647", 2147483647, 0, (0,)),
]

DOCKER_USER_ERRORS = [
    ("nosuch", "unable to find user nosuch: no matching entries in passwd file"),
    (" ", "unable to find user  : no matching entries in passwd file"),
    ("abc:50", "unable to find user abc: no matching entries in passwd file"),
    ("app:nosuch", "unable to find group nosuch: no matching entries in group file"),
    ("1000:abc", "unable to find group abc: no matching entries in group file"),
    ("2147483648", "uids and gids must be in range 0-2147483647"),
    ("4294967296", "uids and gids must be in range 0-2147483647"),
    ("-1", "uids and gids must be in range 0-2147483647"),
    ("0:4294967296", "uids and gids must be in range 0-2147483647"),
]


@pytest.mark.parametrize(("spec", "uid", "gid", "groups"), DOCKER_USERS)
def test_lookup_user_like_docker(busybox_rootfs: Path, spec: str, uid: int, gid: int, groups: tuple) -> None:
    ids = lookup_user(str(busybox_rootfs), spec)
    assert (ids.uid, ids.gid, ids.additional_gids) == (uid, gid, groups)


@pytest.mark.parametrize(("spec", "message"), DOCKER_USER_ERRORS)
def test_lookup_user_errors_like_docker(busybox_rootfs: Path, spec: str, message: str) -> None:
    with pytest.raises(RuntimeFailure) as e:
        lookup_user(str(busybox_rootfs), spec)
    assert str(e.value) == message
    assert e.value.exit_code == 125


def test_huge_numbers_are_names_like_go_atoi_overflow(root: Path) -> None:
    for spec in ("9" * 20, "9" * 5000, "1:" + "9" * 5000):
        with pytest.raises(RuntimeFailure, match="no matching entries"):
            lookup_user(str(root), spec)


def test_one_go_integer_parser_three_forms() -> None:
    """lamina.strconv.parse_int is strconv.ParseInt(s, 10, 64); with "Atoi", strconv.Atoi (the
    `exited` filter, log-opt max-file: dockerd's texts, checked in test_ps_filters);
    rootfs.atoi, the same parse answering None (libcontainer: not a number, a name)."""
    from lamina.strconv import parse_int
    from lamina.runtime.rootfs import atoi

    for text, value in (("0", 0), ("-0", 0), ("+5", 5), ("007", 7), ("0" * 5000 + "1", 1),
                        ("9223372036854775807", 2**63 - 1), ("-9223372036854775808", -2**63)):
        assert parse_int(text) == parse_int(text, "Atoi") == atoi(text) == value
    for text, why in (("", "invalid syntax"), ("+", "invalid syntax"), ("1_0", "invalid syntax"),
                      (" 7", "invalid syntax"), ("\u0663", "invalid syntax"), ("12a", "invalid syntax"),
                      ("18446744073709551615x", "invalid syntax"), ("9223372036854775808", "value out of range"),
                      ("-9223372036854775809", "value out of range"), ("9" * 5000, "value out of range"),
                      ("99999999999999999999x", "value out of range")):
        assert atoi(text) is None
        for func in ("ParseInt", "Atoi"):
            with pytest.raises(ValueError) as e:
                parse_int(text, func)
            assert str(e.value) == f'strconv.{func}: parsing "{text}": {why}'


def test_home_from_passwd(busybox_rootfs: Path) -> None:
    assert lookup_user(str(busybox_rootfs), "app").home == "/home/app"
    assert lookup_user(str(busybox_rootfs), "4242").home == "/"


def test_missing_passwd_numeric_ok_names_fail(root: Path) -> None:
    assert lookup_user(str(root), "123:456") == UserIds(123, 456, (456,), "/")
    assert lookup_user(str(root), "") == UserIds(0, 0, (0,), "/")
    with pytest.raises(RuntimeFailure, match="no matching entries in passwd file"):
        lookup_user(str(root), "app")
    with pytest.raises(RuntimeFailure, match="no matching entries in group file"):
        lookup_user(str(root), "0:staff")


def test_passwd_symlink_out_of_root_is_not_followed(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "host-passwd"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    os.symlink(str(outside), root / "etc/passwd")  # absolute: re-rooted, so missing
    with pytest.raises(RuntimeFailure, match="unable to find user evil"):
        lookup_user(str(root), "evil")
    os.unlink(root / "etc/passwd")
    os.symlink("../../host-passwd", root / "etc/passwd")  # relative escape: clamped at /
    with pytest.raises(RuntimeFailure, match="unable to find user evil"):
        lookup_user(str(root), "evil")


def test_passwd_in_root_symlink_is_followed(root: Path) -> None:
    (root / "data/pw").write_text("svc:x:77:88::/srv:/bin/sh\n")
    os.symlink("/data/pw", root / "etc/passwd")
    assert lookup_user(str(root), "svc") == UserIds(77, 88, (88,), "/srv")


def test_out_of_range_ids_in_passwd_never_wrap_to_root(root: Path) -> None:
    # CVE-2024-40635: 4294967296 truncated to uint32 is 0.
    (root / "etc/passwd").write_text("big:x:4294967296:0::/:/bin/sh\nneg:x:1:-1::/:/bin/sh\n")
    for name in ("big", "neg"):
        with pytest.raises(RuntimeFailure, match="uids and gids must be in range"):
            lookup_user(str(root), name)


def test_malformed_numeric_fields_skip_the_line(root: Path) -> None:
    # Go's parser reads "abc" as 0 (root); we skip the line instead.
    (root / "etc/passwd").write_text("odd:x:abc:abc::/:/bin/sh\nodd:x:5:5::/:/bin/sh\nweird:x:1_000:1::/:/sh\n")
    assert lookup_user(str(root), "odd").uid == 5
    with pytest.raises(RuntimeFailure):
        lookup_user(str(root), "weird")


def test_numeric_spec_is_always_an_id(root: Path) -> None:
    (root / "etc/passwd").write_text("1000:x:5:5::/:/bin/sh\nu:x:1000:7::/:/bin/sh\n")
    assert lookup_user(str(root), "1000").uid == 1000
    assert lookup_user(str(root), "1000").gid == 7


def test_crlf_blank_lines_and_short_lines(root: Path) -> None:
    (root / "etc/passwd").write_text("\r\n  \nshort:x:9\r\nu:x:3:4::/h:/bin/sh\r\n")
    (root / "etc/group").write_text("g:x:20:u,other\r\nh:x:21:other\n")
    assert lookup_user(str(root), "u") == UserIds(3, 4, (4, 20), "/h")
    with pytest.raises(RuntimeFailure):  # no gid field: skipped rather than read as 0 (root)
        lookup_user(str(root), "short")


def test_fifo_passwd_does_not_hang(root: Path) -> None:
    os.mkfifo(root / "etc/passwd")
    with pytest.raises(RuntimeFailure, match="not a regular file"):
        lookup_user(str(root), "app")


def test_directory_passwd_is_an_error(root: Path) -> None:
    (root / "etc/passwd").mkdir()
    with pytest.raises(RuntimeFailure, match="not a regular file"):
        lookup_user(str(root), "1")


def test_huge_passwd_is_refused(root: Path) -> None:
    with open(root / "etc/passwd", "wb") as f:
        f.truncate(MAX_DB_FILE + 1)
    with pytest.raises(RuntimeFailure, match="larger than"):
        lookup_user(str(root), "app")


def test_lookup_never_uses_host_nss(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pwd", None)  # any import of pwd/grp would now fail
    monkeypatch.setitem(sys.modules, "grp", None)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    assert lookup_user(str(root), "root").uid == 0


# --------------------------------------------------------------------------- find_executable


def test_find_in_path(busybox_rootfs: Path) -> None:
    assert find_executable(str(busybox_rootfs), "sh", DEFAULT_PATH, "/") == "/bin/sh"
    assert find_executable(str(busybox_rootfs), "/bin/sh", DEFAULT_PATH, "/") == "/bin/sh"
    assert find_executable(str(busybox_rootfs), "bin/sh", DEFAULT_PATH, "/") == "bin/sh"
    assert find_executable(str(busybox_rootfs), "./sh", DEFAULT_PATH, "/bin") == "./sh"


# Texts as docker/runc print them (after "unable to start container process: ").
@pytest.mark.parametrize(
    ("argv0", "cwd", "exc", "message"),
    [
        ("git", "/", ContainerCommandNotFound, 'exec: "git": executable file not found in $PATH'),
        ("passwd2", "/", ContainerCommandNotFound, 'exec: "passwd2": executable file not found in $PATH'),
        ("/nope", "/", ContainerCommandNotFound, 'exec: "/nope": stat /nope: no such file or directory'),
        ("./passwd", "/", ContainerCommandNotFound, 'exec: "./passwd": stat ./passwd: no such file or directory'),
        ("/etc/passwd", "/", ContainerCommandNotExecutable, 'exec: "/etc/passwd": permission denied'),
        ("etc/passwd", "/", ContainerCommandNotExecutable, 'exec: "etc/passwd": permission denied'),
        ("/etc", "/", ContainerCommandNotExecutable, 'exec: "/etc": permission denied'),
    ],
)
def test_find_errors_like_docker(busybox_rootfs: Path, argv0: str, cwd: str, exc: type, message: str) -> None:
    with pytest.raises(exc) as e:
        find_executable(str(busybox_rootfs), argv0, DEFAULT_PATH, cwd)
    assert str(e.value) == message
    assert e.value.exit_code == {ContainerCommandNotFound: 127, ContainerCommandNotExecutable: 126}[exc]


def test_non_executable_in_path_is_not_found(root: Path) -> None:
    (root / "bin/tool").write_text("#!/bin/sh\n")
    os.chmod(root / "bin/tool", 0o644)
    with pytest.raises(ContainerCommandNotFound):
        find_executable(str(root), "tool", "/bin", "/")
    os.chmod(root / "bin/tool", 0o744)  # any x bit counts, like Go 1.19
    assert find_executable(str(root), "tool", "/bin", "/") == "/bin/tool"


def test_relative_path_entry_is_refused_like_go_errdot(busybox_rootfs: Path) -> None:
    # docker: exec: "ls": cannot run executable found relative to current directory (exit 125)
    for path in (".", ":/nonexistent"):
        with pytest.raises(RuntimeFailure) as e:
            find_executable(str(busybox_rootfs), "ls", path, "/bin")
        assert type(e.value) is RuntimeFailure
        assert str(e.value) == 'exec: "ls": cannot run executable found relative to current directory'


def test_empty_path_finds_nothing(busybox_rootfs: Path) -> None:
    for path in ("", None):
        with pytest.raises(ContainerCommandNotFound):
            find_executable(str(busybox_rootfs), "ls", path, "/")


def test_symlink_to_host_binary_is_not_followed(root: Path) -> None:
    host_python = shutil.which("python3") or "/usr/bin/env"
    os.symlink(host_python, root / "bin/py")  # exists on the host, not in the image
    with pytest.raises(ContainerCommandNotFound):
        find_executable(str(root), "py", "/bin", "/")
    with pytest.raises(ContainerCommandNotFound):
        find_executable(str(root), "/bin/py", "/bin", "/")


def test_symlink_loop_is_an_error_not_a_traceback(root: Path) -> None:
    os.symlink("loop", root / "bin/loop")
    with pytest.raises(LaminaError):
        find_executable(str(root), "/bin/loop", "/bin", "/")
    with pytest.raises(ContainerCommandNotFound):
        find_executable(str(root), "loop", "/bin", "/")
