"""The CLI starts lean: what `lamina ps` (and the other read verbs) import.

A read verb has about 10 ms beyond the interpreter's own start to beat docker's Go
CLI, and one careless top-level import (argparse, dataclasses, typing, re, json,
hashlib: each costs milliseconds here) spends it.  These tests fail when the set
of modules `lamina ps` imports grows past its budget or takes one of those in,
and when the import time of the whole command grows several-fold (the minimum of
a few runs, so that a busy machine does not make it fail).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires_root
from registry_fixtures import registry  # noqa: F401 - pytest fixture

SRC = str(Path(__file__).resolve().parent.parent / "src")

# As the launcher scripts/setup installs runs it: `python -S`, lamina's sources first.
# json is imported after the count: its own imports (re, enum, functools...) are not the verb's.
PROBE = """
import io, sys
sys.path[0] = {src!r}
before = set(sys.modules)
from lamina.cli.main import main
out, sys.stdout = sys.stdout, io.StringIO()
code = main({argv!r})
sys.stdout = out
modules = sorted(set(sys.modules) - before)
import json
print(json.dumps({{"code": code, "modules": modules}}))
"""

# Heavy for a read verb's start-up; each is imported where it is used.  functools and
# collections: what sqlite's C module would import for itself (store/db.py spares it).
NEVER_ON_PS = {"argparse", "dataclasses", "typing", "inspect", "ast", "re", "enum", "json", "hashlib",
               "datetime", "sqlite3", "secrets", "threading", "subprocess", "tempfile", "shutil", "importlib",
               "contextlib", "ctypes", "uuid", "platform", "functools", "collections", "operator",
               "lamina.digest", "lamina.oci", "lamina.store.images", "lamina.store.content",
               "lamina.store.layers", "lamina.store.leases", "lamina.snapshot", "lamina.runtime",
               "lamina.engine.containerfilters",  # only for --filter
               "lamina.cli.commands.exec", "lamina.cli.limitflags"}  # run's flags: only run's parser is built
NEVER_ON_IMAGES = {"argparse", "dataclasses", "typing", "inspect", "ast", "re", "json", "hashlib", "datetime",
                   "sqlite3", "secrets", "threading", "subprocess", "functools", "collections", "contextlib",
                   "lamina.snapshot", "lamina.runtime", "lamina.store.leases", "lamina.store.layers",
                   "lamina.store.containers", "lamina.engine.containers",
                   # the rows straight from SQL (engine/imagelist.py): no image store, OCI, blob or reference code
                   "lamina.engine.images", "lamina.store.images", "lamina.store.indexes", "lamina.store.content",
                   "lamina.oci", "lamina.digest", "lamina.leanjson", "lamina.reference", "lamina.record"}
PS_MODULE_BUDGET = 30  # 30 in issue 9's second and third passes (42 before them; 39 when first written)
IMAGES_MODULE_BUDGET = 26  # 26 in issue 9's fourth pass (36 before it)


def probe(root: Path, *argv: str) -> dict:
    code = PROBE.format(src=SRC, argv=["--root", str(root), *argv])
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[-1])


def test_ps_imports_within_budget(tmp_path):
    got = probe(tmp_path / "store", "ps", "-a")
    assert got["code"] == 0
    modules = set(got["modules"])
    assert not modules & NEVER_ON_PS, sorted(modules & NEVER_ON_PS)
    assert len(modules) <= PS_MODULE_BUDGET, sorted(modules)
    assert {"lamina.cli.flags", "lamina.store.containers", "lamina.store.db"} <= modules  # it did list


def test_images_imports_no_store_writers_nor_heavy_stdlib(tmp_path):
    got = probe(tmp_path / "store", "images")
    assert got["code"] == 0
    modules = set(got["modules"])
    assert not modules & NEVER_ON_IMAGES, sorted(modules & NEVER_ON_IMAGES)
    assert len(modules) <= IMAGES_MODULE_BUDGET, sorted(modules)
    assert "lamina.engine.imagelist" in modules  # it did list


def test_a_usage_error_imports_no_store(tmp_path):
    got = probe(tmp_path / "store", "run", "--bogus")
    assert got["code"] == 125
    assert not any(m.startswith(("lamina.store", "lamina.system")) for m in got["modules"])


def _ps_import_us(root: Path) -> int:
    """Microseconds `python -X importtime` charges to everything `lamina ps` imports."""
    code = PROBE.format(src=SRC, argv=["--root", str(root), "ps", "-a"])
    p = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("import time:") and "|" in ln]
    started = next(i for i, ln in enumerate(lines) if ln.rstrip().endswith("lamina") or "lamina." in ln)
    return sum(int(ln.split("|")[0].split(":")[1]) for ln in lines[started:]
               if ln.split("|")[0].split(":")[1].strip().isdigit())


def test_ps_import_time_within_budget(tmp_path):
    root = tmp_path / "store"
    probe(root, "ps")  # create the store first: its first opening is not what is measured
    best = _ps_import_us(root)
    for _ in range(14):  # the best of up to 15: a busy machine slows some runs, never all
        if best < 20_000:
            break
        best = min(best, _ps_import_us(root))
    # About 7.5 ms on the 2-core development VM in issue 9's second pass, 11 before it
    # (argparse + dataclasses + json alone were 20 ms); the budget allows for a slower or
    # busy machine, not for a heavy import (the module sets above are the exact guard).
    assert best < 20_000, f"lamina ps spent {best / 1000:.1f} ms importing"


@pytest.mark.parametrize("verb", ["ps", "images"])
def test_the_launcher_runs_the_verb(tmp_path, verb):
    """`python -S` with a fixed path (the launcher's way) runs a verb end to end."""
    got = probe(tmp_path / "store", verb)
    assert got["code"] == 0


LAUNCHER = """
import sys
sys.path[0] = {src!r}
from lamina.cli.main import launch
launch()
"""


def _launch(*argv: str) -> subprocess.CompletedProcess:
    """The installed launcher's program (scripts/setup writes it), run as it runs."""
    return subprocess.run([sys.executable, "-S", "-c", LAUNCHER.format(src=SRC), *argv], capture_output=True,
                          text=True, timeout=60)


def test_launch_ends_a_read_verb_with_its_output_and_code(tmp_path):
    """A read verb's process ends at once (no interpreter teardown): what it printed is
    all there (a pipe, so block-buffered), and its exit code is main()'s."""
    root = str(tmp_path / "store")
    assert _launch("--root", root, "ps", "-a").stdout.startswith("CONTAINER ID")
    help_text = _launch("--root", root, "ps", "--help")
    assert (help_text.returncode, help_text.stdout.count("\n") > 5) == (0, True)
    missing = _launch("--root", root, "inspect", "nosuch")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "[]\n", "Error: No such object: nosuch\n")
    refused = _launch("--root", root, "ps", "--filter", "x=1")
    assert (refused.returncode, refused.stderr) == (1, "Error response from daemon: Invalid filter 'x'\n")
    bad = _launch("--root", root, "ps", "--bogus")
    assert bad.returncode == 125 and bad.stderr.startswith("unknown flag: --bogus")


def test_ps_imports_the_filters_only_for_a_filter(tmp_path):
    root = tmp_path / "store"
    assert "lamina.engine.containerfilters" not in probe(root, "ps", "-a")["modules"]
    got = probe(root, "ps", "-a", "--filter", "name=x")
    assert got["code"] == 0 and "lamina.engine.containerfilters" in got["modules"]


SQLITE_PROBE = """
import sys
sys.path[0] = {src!r}
from lamina.store import db
assert "functools" not in sys.modules and "collections" not in sys.modules, sorted(sys.modules)
conn = db.sqlite3.connect({path!r}, isolation_level=None)
conn.execute("CREATE TABLE t (k INTEGER)")
for i in range(300):  # more distinct statements than the statement cache holds (128)
    conn.execute(f"INSERT INTO t VALUES ({{i}})")
    conn.execute("SELECT count(*) FROM t WHERE k >= ?", (i,)).fetchone()
assert conn.execute("SELECT sum(k) FROM t").fetchone() == (sum(range(300)),)
import functools
assert functools.reduce(lambda a, b: a + b, [1, 2, 3]) == 6 and functools.__file__
assert functools.lru_cache(maxsize=2)(abs).cache_info().maxsize == 2
print("ok")
"""


def test_sqlite_loads_without_functools_and_functools_stays_whole(tmp_path):
    """store/db.py gives _sqlite3's init a stand-in for functools (its one use: the statement
    cache's lru_cache): the cache works, and a later `import functools` is the real module."""
    code = SQLITE_PROBE.format(src=SRC, path=str(tmp_path / "t.db"))
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "ok\n", "")


# -- the lean pieces the start-up path uses instead of the heavy modules ----------------

def test_record_is_a_frozen_value_type():
    from lamina.digest import Digest
    from lamina.record import FrozenInstanceError
    from lamina.reference import Reference, parse

    a, b = Digest("sha256:" + "a" * 64), Digest("sha256:" + "b" * 64)
    assert a == Digest("sha256:" + "a" * 64) and a != b and a < b and sorted([b, a]) == [a, b]
    assert len({a, Digest(a.value), b}) == 2 and repr(a) == f"Digest(value='{a.value}')"
    with pytest.raises(FrozenInstanceError):
        a.value = "x"
    with pytest.raises(AttributeError):
        del a.value
    ref = parse("busybox")
    assert ref == Reference("docker.io", "library/busybox", "latest") and ref.digest is None
    assert Reference(domain="d", path="p") == Reference("d", "p", None, None)
    with pytest.raises(TypeError):
        Reference("d")
    with pytest.raises(TypeError):
        Reference("d", "p", nope=1)


def test_leanjson_reads_what_json_reads():
    from lamina import leanjson

    for text in ['{"a": [1, 2.5, "\\u00e9", null, true, {"b": -0}]}', " [] ", b'{"k": "v"}', "\ufeff{}", "NaN"]:
        try:
            want = json.loads(text)
        except ValueError as e:
            with pytest.raises(type(e)):
                leanjson.loads(text)
            continue
        got = leanjson.loads(text)
        assert repr(got) == repr(want)
    for bad in ["{", "1 2", "", b"\xff"]:
        with pytest.raises(ValueError):
            leanjson.loads(bad)


def test_leanjson_writes_what_json_writes():
    """`dumps` (a container's config on `run`) gives json.dumps' very bytes, or its error."""
    from lamina import leanjson

    loop: list = []
    loop.append(loop)
    for value in [{"Env": ["PATH=/x", "é\u2028<>\"\\\x00\ud800"], "N": [0, -1, 1.5, 1e300, True, None, float("nan"),
                   float("-inf")], "E": {}, "L": [], "T": (1, "t"), 7: "int key", None: 1, 2.5: "f"},
                  "\x1bé", 3, [], {}]:
        assert leanjson.dumps(value) == json.dumps(value)
    for bad in [{"x": {1}}, {(1, 2): 3}, b"b", loop]:
        with pytest.raises((TypeError, ValueError)) as want:
            json.dumps(bad)
        with pytest.raises(type(want.value), match=str(want.value)):
            leanjson.dumps(bad)


def test_go_dumps_writes_what_go_json_wrote():
    import re

    from lamina import leanjson
    from lamina.leanjson import Unsupported, go_dumps

    value = [{"Cmd": ["/bin/ec ho", "\x1b[31m\x07\x9b\x7f\\\"q", "t\tn\n", "\u2028x\u202e", "é…", "\b\f<>&", "\ud800"],
              "N": [0, -1, 1.5, 1e300, True, False, None], "E": {}, "L": [], 7: "int key"}]
    for indent in (None, 4):
        for html in (True, False):
            text = json.dumps(value, indent=indent, ensure_ascii=False,
                              separators=(",", ":") if indent is None else None)
            want = re.sub(leanjson._JSON_FIXUPS if html else leanjson._JSON_FIXUPS_NO_HTML, leanjson._json_fixup, text)
            assert go_dumps(value, indent, html) == want
    with pytest.raises(Unsupported):
        go_dumps({"x": object()})


@pytest.mark.parametrize("text,ok", [
    ("busybox", True), ("a/b__c/d-e.f", True), ("a___b", False), ("A", False), ("a_.b", False),
    ("localhost:5000/x:t", True), ("[::1]:5000/x", True), ("h-.x/y", False), ("host:/x", False),
    ("x:" + "t" * 128, True), ("x:" + "t" * 129, False), ("x:.t", False), ("x@sha256:" + "a" * 64, True),
    ("x@sha256:" + "A" * 64, False), ("x:é", True),  # \w as Python's re had it
])
def test_reference_grammar_without_re(text, ok):
    from lamina.errors import InvalidReference
    from lamina.reference import parse

    if ok:
        parse(text)
    else:
        with pytest.raises(InvalidReference):
            parse(text)


HEAVY_STDLIB = {"argparse", "dataclasses", "typing", "inspect", "ast", "re", "enum", "json", "hashlib",
                "datetime", "sqlite3", "secrets", "threading", "subprocess", "tempfile", "shutil", "ctypes", "uuid",
                "platform"}


@requires_root
def test_inspect_image_and_diff_import_no_heavy_stdlib(tmp_path, busybox_tar):
    """`inspect IMAGE` reads two documents, `diff` a directory: neither needs a heavy module."""
    root = tmp_path / "store"
    lamina = [sys.executable, "-m", "lamina", "--root", str(root)]
    subprocess.run(lamina + ["import", str(busybox_tar), "bb:1"], check=True, capture_output=True)
    subprocess.run(lamina + ["create", "--name", "ctr", "bb:1", "true"], check=True, capture_output=True)
    for argv in (["inspect", "bb:1"], ["diff", "ctr"], ["images"], ["ps", "-a"]):
        got = probe(root, *argv)
        assert got["code"] == 0, argv
        assert not set(got["modules"]) & HEAVY_STDLIB, (argv, sorted(set(got["modules"]) & HEAVY_STDLIB))
        if argv[0] == "diff":  # reads the upper dir: mounts nothing
            assert "lamina.snapshot.mount" not in got["modules"]
        if argv[0] == "inspect":  # an image's (a tag: no container's name): no container code
            assert not {"lamina.engine.containers", "lamina.store.containers"} & set(got["modules"])
            # nor the image store, the image value, oci or the listings' formatting: its row, tags and config
            assert not {"lamina.store.images", "lamina.image", "lamina.oci", "lamina.cli.fmt",
                        "lamina.engine.images"} & set(got["modules"]), sorted(got["modules"])
        if argv[0] in ("inspect", "ps"):  # each in a module of its own, without run's verbs
            assert "lamina.cli.commands.containers" not in got["modules"]
    got = probe(root, "inspect", "/ctr", "bb:1")  # a container's name, with docker's leading /
    assert got["code"] == 0 and "lamina.engine.containers" in got["modules"]


# Every SQL statement a command runs, as SQLite saw it (connections made through store/db.py).
TRACE_PROBE = """
import io, sys
sys.path[0] = {src!r}
from lamina.store import db
real, statements = db.sqlite3, []

class Traced:
    def __getattr__(self, name):
        return getattr(real, name)

    def connect(self, *args, **kwargs):
        conn = real.connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

db.sqlite3 = Traced()
from lamina.cli.main import main
out, sys.stdout = sys.stdout, io.StringIO()
code = main({argv!r})
sys.stdout = out
import json
print(json.dumps({{"code": code, "statements": statements}}))
"""


def traced(root: Path, *argv: str) -> dict:
    code = TRACE_PROBE.format(src=SRC, argv=["--root", str(root), *argv])
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.splitlines()[-1])
    # "-- ...": what SQLite ran inside a statement (pragma_journal_mode's PRAGMA), not one more
    got["statements"] = [s for s in got["statements"] if not s.startswith("--")]
    return got


@requires_root
def test_a_read_verb_opens_the_store_in_few_statements(tmp_path, busybox_tar):
    """Opening a store is four statements (two settings, the schema version and journal
    mode in one, what an interrupted command left in one); `ps` then lists, and asks
    whether a container's image name still names its image once per name, not per container."""
    root = tmp_path / "store"
    lamina = [sys.executable, "-m", "lamina", "--root", str(root)]
    subprocess.run(lamina + ["import", str(busybox_tar), "bb:1"], check=True, capture_output=True)
    for i in range(3):
        subprocess.run(lamina + ["create", "--name", f"c{i}", "bb:1", "true"], check=True, capture_output=True)
    got = traced(root, "images", "-q")
    assert got["code"] == 0
    opening = got["statements"][:4]
    assert opening[:2] == ["PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"], opening
    assert "FROM meta" in opening[2] and "pragma_journal_mode" in opening[2], opening
    assert opening[3].startswith("SELECT EXISTS"), opening
    got = traced(root, "ps", "-a")
    assert got["code"] == 0
    assert len(got["statements"]) == 4 + 1 + 2, got["statements"]
    got = traced(root, "inspect", "bb:1")  # a tag names no container: the containers are not asked
    assert got["code"] == 0 and not [s for s in got["statements"][4:] if "FROM containers" in s], got


# What `push` of an image the registry has and `pull` of an image the store has need: a
# few small requests to a plain-HTTP registry through http.client (the standard library's
# HTTP, kept: a registry is a remote peer, its parser is not ours to rewrite).
# concurrent.futures (logging), dataclasses (inspect, ast), typing, json, tempfile (shutil,
# random) and the store's heavier modules cost a registry verb more than docker's whole command.
NEVER_ON_REGISTRY_VERBS = {"logging", "concurrent", "concurrent.futures", "dataclasses", "inspect", "ast",
                           "typing", "json", "subprocess", "tempfile", "shutil", "secrets", "sqlite3",
                           "argparse"}
REGISTRY_VERB_MODULE_BUDGET = 128  # 124 (push and pull) when written


@requires_root
def test_push_and_pull_of_what_is_there_stay_lean(tmp_path, busybox_tar, registry):  # noqa: F811
    root = tmp_path / "store"
    name = f"{registry.host}/startup/bb:1"
    lamina = [sys.executable, "-m", "lamina", "--root", str(root)]
    for argv in (["import", str(busybox_tar), "bb:1"], ["tag", "bb:1", name], ["push", name]):
        subprocess.run(lamina + argv, check=True, capture_output=True)
    for verb in ("push", "pull"):
        got = probe(root, verb, name)
        assert got["code"] == 0
        modules = set(got["modules"])
        assert not modules & NEVER_ON_REGISTRY_VERBS, (verb, sorted(modules & NEVER_ON_REGISTRY_VERBS))
        assert len(modules) <= REGISTRY_VERB_MODULE_BUDGET, (verb, sorted(modules))
        assert {"http.client", f"lamina.transfer.{verb}"} <= modules  # it did talk to the registry
