"""Smoke test of the benchmark suite (bench/run), so it cannot rot.

The benchmark itself is not a test and never gates anything on speed; this only checks that
`bench/run --quick` runs end to end on a fast subset (lamina only) and writes the JSON the
suite promises: {"workload": {"lamina_s": ..., "docker_s": ..., "ratio": ...}, ...}.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="SKIPPED LOUDLY: bench/run needs root (overlay mounts, runc)"),
]


def test_bench_quick_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results" / "latest.json"
    p = subprocess.run(
        [str(REPO / "bench" / "run"), "--quick", "--no-docker", "--no-plots", "--only", "run,diff",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"bench/run failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    data = json.loads(out.read_text())
    assert set(data) == {"run", "diff"}, data.keys()
    for name, e in data.items():
        assert {"lamina_s", "docker_s", "ratio", "target", "lamina_max_rss_mb"} <= set(e), (name, e)
        # --no-docker: nothing to compare with, and the entry says so instead of failing
        assert e["docker_s"] is None and e["ratio"] is None, (name, e)
        assert e["notes"]["docker"] == "--no-docker"
        assert isinstance(e["lamina_s"], float) and 0 < e["lamina_s"] < 120, (name, e.get("note"), p.stderr[-3000:])
        assert e["lamina_max_rss_mb"] > 0 and len(e["samples"]["lamina"]) == 1
    assert data["diff"]["changes"]["lamina"] >= 300  # the container really made its changes
    table = p.stdout
    assert "workload" in table and "run" in table and "diff" in table
    # the harness cleaned up after itself: its temporary store is gone
    m = re.search(r"lamina store: (\S+)/root", p.stderr)
    assert m and not Path(m.group(1)).exists(), p.stderr[-2000:]
