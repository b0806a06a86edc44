"""crun's compiled seccomp filters kept and handed back (runtime/seccompcache.py, issue 9).

The first container with a profile is compiled by crun; its filter, crun's own
output, is kept under `<store>/runtime/seccomp/<key>`, and the next containers with
that profile get it through crun's `run.oci.seccomp_bpf_data` annotation.  What must
hold: the container handed a kept filter is confined exactly as a compiled one (the
same bytes, the same refusals, in exec too); another profile or capability set never
gets it; an entry that fails its check is never used; runc is never given one.  The
module's own checks (digest, links, FIFOs, sizes, eviction) need no root.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires_root, runtime_name
from lamina.digest import Digest
from lamina.runtime.seccompcache import _KEEP, ANNOTATION, SeccompFilter

SECTION = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
FILTER = bytes(range(8)) * 40  # 40 instructions' worth of bytes: the module never looks inside


def _config(section=SECTION) -> dict:
    return {"linux": {"seccomp": section}}


def _cache(tmp_path: Path, identity: str = "crun:1") -> SeccompFilter:
    (tmp_path / "state" / "c1").mkdir(parents=True, exist_ok=True)
    return SeccompFilter(str(tmp_path / "seccomp"), identity, str(tmp_path / "state"))


def _learned(tmp_path: Path, data: bytes = FILTER) -> str:
    """A miss, then crun's compiled filter (`data`) learned; returns the entry's key."""
    f = _cache(tmp_path)
    f.annotate(_config())
    assert f.wanted
    key = f.key
    (tmp_path / "state" / "c1" / "seccomp.bpf").write_bytes(data)
    f.learn("c1")
    assert not f.wanted
    return key


# ---------------------------------------------------------------------- no root needed


def test_miss_then_hit_hands_crun_its_own_bytes(tmp_path):
    key = _learned(tmp_path)
    entry = (tmp_path / "seccomp" / key).read_bytes()
    assert entry == f"sha256:{Digest.of_bytes(FILTER).hex}\n".encode() + FILTER
    config = _config()
    hit = _cache(tmp_path)
    hit.annotate(config)
    assert not hit.wanted
    assert base64.b64decode(config["annotations"][ANNOTATION]) == FILTER


@pytest.mark.parametrize("other", [
    {"identity": "crun:2"},  # another crun, libseccomp or kernel
    {"section": {**SECTION, "defaultAction": "SCMP_ACT_KILL"}},  # another profile
    {"section": {**SECTION, "syscalls": [{"names": ["read", "unshare"], "action": "SCMP_ACT_ALLOW"}]}},
])
def test_another_binary_or_profile_never_gets_the_filter(tmp_path, other):
    _learned(tmp_path)
    config = _config(other.get("section", SECTION))
    f = _cache(tmp_path, other.get("identity", "crun:1"))
    f.annotate(config)
    assert f.wanted and "annotations" not in config


def test_unconfined_and_crun_annotations_already_set_are_left_alone(tmp_path):
    _learned(tmp_path)
    for config in ({"linux": {}}, {"linux": {"seccomp": None}},
                   {"linux": {"seccomp": SECTION}, "annotations": {"run.oci.seccomp_fail_unknown_syscall": "1"}}):
        before = json.dumps(config)
        f = _cache(tmp_path)
        f.annotate(config)
        assert not f.wanted and json.dumps(config) == before


@pytest.mark.parametrize("damage", ["flip", "truncate", "header", "empty", "odd"])
def test_an_entry_failing_its_check_is_removed_and_never_used(tmp_path, damage):
    key = _learned(tmp_path)
    path = tmp_path / "seccomp" / key
    data = path.read_bytes()
    path.write_bytes({
        "flip": data[:-1] + bytes([data[-1] ^ 1]),
        "truncate": data[:-8],
        "header": b"sha256:" + b"0" * 64 + b"\n" + FILTER,
        "empty": b"",
        "odd": f"sha256:{Digest.of_bytes(FILTER[:-3]).hex}\n".encode() + FILTER[:-3],  # not whole instructions
    }[damage])
    config = _config()
    f = _cache(tmp_path)
    f.annotate(config)
    assert f.wanted and "annotations" not in config
    assert not path.exists()


def test_links_and_fifos_are_never_followed_or_waited_on(tmp_path):
    key = _learned(tmp_path)
    entry = tmp_path / "seccomp" / key
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(entry.read_bytes())
    entry.unlink()
    entry.symlink_to(elsewhere)
    config = _config()
    f = _cache(tmp_path)
    f.annotate(config)  # a link, even to a valid entry: not used, removed, the target untouched
    assert f.wanted and "annotations" not in config and not os.path.lexists(entry) and elsewhere.exists()
    state = tmp_path / "state" / "c1" / "seccomp.bpf"
    state.unlink()
    os.mkfifo(state)
    f.learn("c1")  # would block for ever on an open without O_NONBLOCK
    assert not entry.exists()
    state.unlink()
    state.symlink_to(elsewhere)
    f.key = key
    f.learn("c1")
    assert not entry.exists()


def test_a_cache_directory_that_is_a_link_is_neither_read_nor_written(tmp_path):
    key = _learned(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "seccomp").rename(elsewhere)
    (tmp_path / "seccomp").symlink_to(elsewhere)
    config = _config()
    f = _cache(tmp_path)
    f.annotate(config)  # a valid entry behind the link: not used
    assert f.wanted and "annotations" not in config
    (elsewhere / key).unlink()
    (tmp_path / "state" / "c1" / "seccomp.bpf").write_bytes(FILTER)
    f.learn("c1")  # nothing written through the link
    assert os.listdir(elsewhere) == []


@pytest.mark.parametrize("size", [0, 4, 4096 * 8 + 8])
def test_an_implausible_compiled_filter_is_not_kept(tmp_path, size):
    f = _cache(tmp_path)
    f.annotate(_config())
    (tmp_path / "state" / "c1" / "seccomp.bpf").write_bytes(b"\0" * size)
    f.learn("c1")
    assert not (tmp_path / "seccomp").exists() or not os.listdir(tmp_path / "seccomp")


def test_learning_without_crun_state_or_a_writable_cache_is_only_slower(tmp_path):
    f = _cache(tmp_path)
    f.annotate(_config())
    f.learn("gone")  # crun's state already deleted
    assert not (tmp_path / "seccomp").exists()
    (tmp_path / "seccomp").write_text("not a directory")
    f = _cache(tmp_path)
    f.annotate(_config())
    (tmp_path / "state" / "c1" / "seccomp.bpf").write_bytes(FILTER)
    f.learn("c1")  # no exception: the start goes on


def test_the_cache_keeps_a_bounded_number_of_entries(tmp_path):
    for i in range(_KEEP + 5):
        f = _cache(tmp_path)
        f.annotate(_config({**SECTION, "defaultErrnoRet": i}))
        (tmp_path / "state" / "c1" / "seccomp.bpf").write_bytes(FILTER)
        f.learn("c1")
    names = os.listdir(tmp_path / "seccomp")
    assert 0 < len(names) <= _KEEP and not [n for n in names if n.endswith(".tmp")]


def test_the_library_in_the_key_is_the_one_ldd_finds_or_none_for_a_static_binary(tmp_path):
    from types import SimpleNamespace

    from conftest import _busybox_binary
    from lamina.runtime.seccompcache import _libseccomp

    crun = shutil.which("crun")
    if crun is None or shutil.which("ldd") is None:
        pytest.skip("SKIPPED LOUDLY: needs crun and ldd")
    state_root = str(tmp_path / "runtime" / "crun")
    found = _libseccomp(SimpleNamespace(path=crun, state_root=state_root))
    assert os.path.basename(found).startswith("libseccomp.so") and os.path.isfile(found)
    # cached per binary beside its version: asked again, no ldd runs
    facts = json.loads((tmp_path / "runtime" / "facts.json").read_text())
    assert [entry["libseccomp"] for entry in facts.values()] == [found]
    static = SimpleNamespace(path=str(_busybox_binary()), state_root=state_root)
    assert _libseccomp(static) == ""  # its libseccomp, if any, is inside: the binary's identity covers it
    wrapper = tmp_path / "crun-wrapper"
    wrapper.write_text(f"#!/bin/sh\nexec {crun} \"$@\"\n")
    wrapper.chmod(0o755)
    # the crun a wrapper starts can change under the wrapper's identity: no key, no filter
    assert _libseccomp(SimpleNamespace(path=str(wrapper), state_root=state_root)) is None


# ---------------------------------------------------------------------- real containers


@pytest.fixture
def store(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina = [sys.executable, "-m", "lamina", "--root", str(root)]
    subprocess.run(lamina + ["import", str(busybox_tar), "bb:1"], check=True, capture_output=True)
    if runtime_name(root) != "crun":
        pytest.skip("SKIPPED LOUDLY: the filter cache is crun's; lamina runs runc here")
    return root, lamina


def _run(lamina, *args, check=True):
    return subprocess.run(lamina + list(args), capture_output=True, text=True, check=check, timeout=120)


def _annotation(root: Path, cid: str) -> bytes | None:
    config = json.loads((root / "containers" / cid / "bundle" / "config.json").read_text())
    data = (config.get("annotations") or {}).get(ANNOTATION)
    return None if data is None else base64.b64decode(data)


def _entries(root: Path) -> dict[str, bytes]:
    d = root / "runtime" / "seccomp"
    return {p.name: p.read_bytes().partition(b"\n")[2] for p in d.iterdir()} if d.exists() else {}


CONFINED = "grep Seccomp: /proc/self/status; unshare -U true && echo unshared; mount -t tmpfs t /mnt && echo mounted; true"


@requires_root
def test_a_kept_filter_is_crun_own_compile_and_confines_run_and_exec_alike(store):
    root, lamina = store
    first = _run(lamina, "run", "-d", "bb:1", "sh", "-c", CONFINED).stdout.strip()
    _run(lamina, "wait", first)
    assert _annotation(root, first) is None  # compiled by crun ...
    entries = _entries(root)
    assert len(entries) == 1  # ... and kept
    compiled = next(iter(entries.values()))
    second = _run(lamina, "run", "-d", "bb:1", "sleep", "60").stdout.strip()
    try:
        assert _annotation(root, second) == compiled  # handed back, byte for byte
        assert (root / "runtime" / "crun" / second / "seccomp.bpf").read_bytes() == compiled
        refused = _run(lamina, "exec", second, "sh", "-c", CONFINED, check=False)
        assert "Seccomp:\t2" in refused.stdout and "unshared" not in refused.stdout
        # a user namespace needs no capability: only seccomp refuses it
        assert "mounted" not in refused.stdout and "unshare(0x10000000): Operation not permitted" in refused.stderr
    finally:
        _run(lamina, "rm", "-f", second)
    for_first = _run(lamina, "logs", first)
    assert for_first.stdout == refused.stdout and for_first.stderr == refused.stderr
    # what crun compiles afresh for the profile is what it was handed
    shutil.rmtree(root / "runtime" / "seccomp")
    _run(lamina, "run", "--rm", "bb:1", "true")
    assert _entries(root) == entries


@requires_root
def test_foreground_runs_learn_and_use_it_with_the_same_output_and_codes(store):
    root, lamina = store
    results = [_run(lamina, "run", "--rm", "bb:1", "sh", "-c", CONFINED + "; exit 3", check=False) for _ in range(2)]
    assert len(_entries(root)) == 1
    assert [r.returncode for r in results] == [3, 3]
    assert results[0].stdout == results[1].stdout and "Seccomp:\t2" in results[0].stdout
    assert results[0].stderr == results[1].stderr and "unshared" not in results[0].stdout


@requires_root
def test_another_capability_set_or_profile_gets_its_own_filter(store, tmp_path):
    root, lamina = store
    _run(lamina, "run", "--rm", "bb:1", "true")
    assert len(_entries(root)) == 1
    # CAP_SYS_ADMIN's profile allows unshare: the default one's filter would refuse it
    for _ in range(2):
        got = _run(lamina, "run", "--rm", "--cap-add", "SYS_ADMIN", "bb:1", "sh", "-c", "unshare -U true && echo ok")
        assert got.stdout == "ok\n"
    assert len(_entries(root)) == 2
    profile = tmp_path / "allow-all-but-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    for _ in range(2):
        got = _run(lamina, "run", "--rm", "--security-opt", f"seccomp={profile}", "bb:1", "sh", "-c",
                   "unshare -U true; mkdir /x && echo made", check=False)
        assert "made" not in got.stdout and "Operation not permitted" in got.stderr
    assert len(_entries(root)) == 3
    unconfined = _run(lamina, "run", "-d", "--security-opt", "seccomp=unconfined", "bb:1", "true").stdout.strip()
    _run(lamina, "wait", unconfined)
    assert _annotation(root, unconfined) is None and len(_entries(root)) == 3


@requires_root
def test_a_damaged_entry_is_compiled_again_not_used(store):
    root, lamina = store
    _run(lamina, "run", "--rm", "bb:1", "true")
    (entry,) = (root / "runtime" / "seccomp").iterdir()
    good = entry.read_bytes()
    entry.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    cid = _run(lamina, "run", "-d", "bb:1", "sh", "-c", CONFINED).stdout.strip()
    assert _run(lamina, "wait", cid).stdout.strip() == "0"
    assert _annotation(root, cid) is None  # crun compiled it ...
    assert entry.read_bytes() == good  # ... and the entry is crun's again
    assert "unshared" not in _run(lamina, "logs", cid).stdout


@requires_root
def test_runc_is_never_handed_a_filter(store):
    root, lamina = store
    if shutil.which("runc") is None:
        pytest.skip("SKIPPED LOUDLY: runc is not installed")
    _run(lamina, "run", "--rm", "bb:1", "true")  # crun's entry exists
    cid = _run(lamina, "--runtime", "runc", "run", "-d", "bb:1", "true").stdout.strip()
    _run(lamina, "--runtime", "runc", "wait", cid)
    assert _annotation(root, cid) is None and len(_entries(root)) == 1
