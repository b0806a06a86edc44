"""`run --rm IMAGE true` imports no module it can do without (issue 9's speed target).

The run path once imported dataclasses (and with it inspect, ast, tokenize) for six
small value classes, subprocess for two `ip` commands and json for one config.json;
each costs milliseconds on the 2-core VM where docker's whole `run` takes ~350 ms
and ours must stay under a fifth of it.  These modules must not come back, nor
typing and threading (progress sinks made in case of a pull), json with re and enum
(the container record), shutil with bz2, lzma and fnmatch (`--rm`, host's /etc
files): ~12 ms together.  A host or none container starts no thread at all.  Nor
functools and collections (with operator, reprlib, keyword: ~2-3 ms), which an
lru_cache in the seccomp module and an OrderedDict in the rootfs walk once brought
in, nor the pull's progress sinks (transfer/progress.py, units.py) for an image
that is there.  `create` builds no runtime spec: no seccomp profile, no runner.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import requires_root
from test_cli_startup import _launch, probe

NEVER_ON_RUN = {"argparse", "dataclasses", "inspect", "ast", "tokenize", "subprocess", "tempfile", "hashlib",
                "uuid", "platform", "lamina.builder", "lamina.transfer.pull", "lamina.remote",
                "typing", "json", "re", "shutil", "bz2", "lzma", "fnmatch", "functools", "collections",
                "operator", "reprlib", "lamina.transfer.progress", "lamina.units",
                "ctypes"}  # mounts and namespaces through lamina/libc.py: ctypes and a CDLL cost a start ~1 ms
NEVER_WITHOUT_BRIDGE = {"threading"}
NEVER_ON_CREATE = NEVER_ON_RUN | {"lamina.runtime.seccomp", "lamina.runner", "lamina.network.endpoint", "ctypes",
                                  "select", "threading", "resource"}
CREATE_MODULE_BUDGET = 56  # 54 when written (issue 12: `run -d` creates as `create` does)
RUN_MODULE_BUDGET = 85  # 72 (bridge) when written; python -S, as the launcher runs; +6 when a plain
# run began keeping docker's json-file log (lamina.logs, its writer, runtime.tee/detached, select);
# recounted at 92 in issue 9's second pass, when the probe stopped hiding what its own `import
# json` loads (re, enum, functools, collections...: 113 by that count before the pass); 81 after
# issue 12's (seccomp without functools, the rootfs walk without collections, no progress sink); +1
# with runtime/seccompcache (its ~0.2 ms saves crun's ~10 ms compile of the profile)


@requires_root
def test_run_imports_no_heavy_module(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina = [sys.executable, "-m", "lamina", "--root", str(root)]
    subprocess.run(lamina + ["import", str(busybox_tar), "bb:1"], check=True, capture_output=True)
    # A store's first start probes once what later ones read from small caches (overlay
    # support, the runtime's version and its advisories): not what every start costs.
    subprocess.run(lamina + ["run", "--rm", "bb:1", "true"], check=True, capture_output=True)
    for network in ("bridge", "host", "none"):
        got = probe(root, "run", "--rm", "--network", network, "bb:1", "true")
        assert got["code"] == 0, network
        modules = set(got["modules"])
        assert "lamina.runner" in modules  # it did run the container here
        assert not modules & NEVER_ON_RUN, (network, sorted(modules & NEVER_ON_RUN))
        if network != "bridge":
            assert not modules & NEVER_WITHOUT_BRIDGE, (network, sorted(modules & NEVER_WITHOUT_BRIDGE))
        assert len(modules) <= RUN_MODULE_BUDGET, (network, len(modules), sorted(modules))


@requires_root
def test_create_imports_no_start_module(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina = [sys.executable, "-m", "lamina", "--root", str(root)]
    subprocess.run(lamina + ["import", str(busybox_tar), "bb:1"], check=True, capture_output=True)
    # the first create unpacks the image's layers and probes overlay support: not every create's cost
    subprocess.run(lamina + ["create", "bb:1", "true"], check=True, capture_output=True)
    got = probe(root, "create", "bb:1", "true")
    assert got["code"] == 0
    modules = set(got["modules"])
    assert "lamina.lifecycle" in modules  # it did create the container here
    assert not modules & NEVER_ON_CREATE, sorted(modules & NEVER_ON_CREATE)
    assert len(modules) <= CREATE_MODULE_BUDGET, (len(modules), sorted(modules))


@requires_root
def test_the_launcher_ends_create_and_run_with_their_output_code_and_rows(tmp_path, busybox_tar):
    """create, run and rm end with os._exit and leave the store open to that exit (no checkpoint
    of the last connection): what they printed is all there, the code is main()'s, and the
    next command sees every row they committed."""
    root = str(tmp_path / "store")
    lamina = [sys.executable, "-m", "lamina", "--root", root]
    subprocess.run(lamina + ["import", str(busybox_tar), "bb:1"], check=True, capture_output=True)
    made = _launch("--root", root, "create", "--name", "made", "bb:1", "echo", "hi")
    assert made.returncode == 0, made.stderr
    ran = _launch("--root", root, "run", "--network", "none", "--name", "ran", "bb:1", "sh", "-c", "echo out; exit 3")
    assert (ran.returncode, ran.stdout) == (3, "out\n"), ran.stderr
    gone = _launch("--root", root, "run", "--rm", "--network", "none", "bb:1", "true")
    assert gone.returncode == 0, gone.stderr
    listed = subprocess.run(lamina + ["ps", "-a", "--format", "{{.Names}} {{.Status}}"], check=True,
                            capture_output=True, text=True).stdout.splitlines()
    assert sorted(line.split(" (")[0] for line in listed) == ["made Created", "ran Exited"], listed
    assert made.stdout.strip() == subprocess.run(lamina + ["inspect", "--format", "{{.Id}}", "made"], check=True,
                                                 capture_output=True, text=True).stdout.strip()
    removed = _launch("--root", root, "rm", "made", "ran")  # rm ends the same way
    assert (removed.returncode, removed.stdout) == (0, "made\nran\n"), removed.stderr
    assert subprocess.run(lamina + ["ps", "-aq"], check=True, capture_output=True, text=True).stdout == ""
