"""`run --rm IMAGE true` imports no module it can do without (issue 9's speed target).

The run path once imported dataclasses (and with it inspect, ast, tokenize) for six
small value classes, subprocess for two `ip` commands and json for one config.json;
each costs milliseconds on the 2-core VM where docker's whole `run` takes ~350 ms
and ours must stay under a fifth of it.  These modules must not come back, nor
typing and threading (progress sinks made in case of a pull), json with re and enum
(the container record), shutil with bz2, lzma and fnmatch (`--rm`, host's /etc
files): ~12 ms together.  A host or none container starts no thread at all.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import requires_root
from test_cli_startup import probe

NEVER_ON_RUN = {"argparse", "dataclasses", "inspect", "ast", "tokenize", "subprocess", "tempfile", "hashlib",
                "uuid", "platform", "lamina.builder", "lamina.transfer.pull", "lamina.remote",
                "typing", "json", "re", "shutil", "bz2", "lzma", "fnmatch"}
NEVER_WITHOUT_BRIDGE = {"threading"}
RUN_MODULE_BUDGET = 96  # 72 (bridge) when written; python -S, as the launcher runs; +6 when a plain
# run began keeping docker's json-file log (lamina.logs, its writer, runtime.tee/detached, select);
# recounted at 92 in issue 9's second pass, when the probe stopped hiding what its own `import
# json` loads (re, enum, functools, collections...: 113 by that count before the pass)


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
