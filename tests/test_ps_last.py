"""`ps -n N` / `--last N` and `ps -l` / `--latest` as docker 20.10's (issue 12): the N last
created containers of any state, with -q, --format and --filter; the API's
/containers/json `limit` behind them (engine/containers.list_containers); pflag's Go
integers for -n (0x10, 010, 1_0).

The expectations were printed by docker 20.10 (/usr/bin/docker) for the same four
containers on dockerd; where dockerd runs, the scenario is made there too and docker's
answers must equal lamina's.  One container runs (`sleep`): it is removed at the end,
as is every docker object made here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from conftest import require_dockerd, requires_root

pytestmark = requires_root

LAMINA = [sys.executable, "-m", "lamina"]
DOCKER = "/usr/bin/docker"  # Debian's 20.10 CLI, the spec

# (ps flags, names listed, newest first): a created, b exited (3), c running, d created
CASES = [
    ([], ["c"]),
    (["-n", "2"], ["d", "c"]),
    (["-n", "0"], ["c"]),  # no limit: running ones only
    (["-n", "-1"], ["c"]),
    (["-n", "-3"], ["c"]),
    (["-l"], ["d"]),
    (["-l", "-n", "3"], ["d", "c", "b"]),  # -n wins over -l
    (["-n", "3", "--latest"], ["d", "c", "b"]),
    (["-a", "-n", "1"], ["d"]),
    (["-n", "9"], ["d", "c", "b", "a"]),
    (["--last=2"], ["d", "c"]),
    (["-n2"], ["d", "c"]),
    (["-ln", "2"], ["d", "c"]),
    (["-n", "0x10"], ["d", "c", "b", "a"]),  # pflag: strconv.ParseInt(s, 0, 64)
    (["-n", "010"], ["d", "c", "b", "a"]),
    (["-n", "0b11"], ["d", "c", "b"]),
    (["-n", "1_0"], ["d", "c", "b", "a"]),
    (["-n", "0_1"], ["d"]),
    (["-n", "+2"], ["d", "c"]),
    (["-n", "2", "--filter", "status=running"], ["c"]),
    (["-n", "1", "--filter", "status=created"], ["d"]),
    (["-l", "--filter", "status=exited"], ["b"]),
    (["-n", "2", "--filter", "name=p-[ab]"], ["b", "a"]),
]
BAD = [
    ("x", "invalid syntax"), ("1.5", "invalid syntax"), (" 5", "invalid syntax"), ("_1", "invalid syntax"),
    ("0x", "invalid syntax"), ("08", "invalid syntax"), ("1__0", "invalid syntax"),
    ("99999999999999999999", "value out of range"),
]


class Scenario:
    def __init__(self, argv: list[str], image: str, prefix: str) -> None:
        self.argv, self.image, self.prefix = argv, image, prefix

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv + list(args), capture_output=True, text=True, timeout=120)
        assert not check or p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    def make(self) -> None:
        n, img = self.name, self.image
        self.run("create", "--name", n("a"), img, "true")
        self.run("run", "--name", n("b"), img, "sh", "-c", "exit 3", check=False)
        self.run("run", "-d", "--name", n("c"), img, "sleep", "600")
        self.run("create", "--name", n("d"), img, "true")

    def remove(self) -> None:
        for short in "abcd":
            self.run("rm", "-f", self.name(short), check=False)

    def name(self, short: str) -> str:
        return f"{self.prefix}p-{short}"

    def ps(self, *flags: str, fmt: str = "{{.Names}}") -> list[str]:
        """The scenario's names listed (short); only its own containers (a name filter:
        dockerd may hold others'), which ps applies before the limit."""
        flags = tuple(f.replace("name=p-", f"name=^/{self.prefix}p-") for f in flags)
        if not any(f.startswith("name=") for f in flags):
            flags += ("--filter", f"name=^/{self.prefix}p-")
        p = self.run("ps", *flags, *(("--format", fmt) if fmt else ()))
        mine = f"{self.prefix}p-"
        return [n[len(mine):] for n in p.stdout.split() if n.startswith(mine)]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, busybox_tar):
    root = tmp_path_factory.mktemp("ps-last") / "store"
    s = Scenario([*LAMINA, "--root", str(root)], "pl/busybox:1", "")
    s.run("import", str(busybox_tar), s.image)
    s.root = root
    try:
        s.make()
        yield s
    finally:
        s.remove()


@pytest.mark.parametrize("flags,names", CASES, ids=[" ".join(f) for f, _ in CASES])
def test_last_and_latest(scenario, flags, names):
    assert scenario.ps(*flags) == names


def test_quiet_and_format_with_a_limit(scenario):
    ids = {short: scenario.run("inspect", "-f", "{{.Id}}", scenario.name(short)).stdout.strip() for short in "abcd"}
    p = scenario.run("ps", "-n", "2", "-q")
    assert p.stdout.split() == [ids["d"][:12], ids["c"][:12]]
    assert scenario.run("ps", "-l", "-q", "--no-trunc").stdout.split() == [ids["d"]]
    p = scenario.run("ps", "-n", "2", "--format", "{{.Names}} {{.State}}")
    assert (p.stdout, p.stderr) == ("p-d created\np-c running\n", "")
    # docker 20.10: a custom format beats -q (no warning); `table` keeps -q
    p = scenario.run("ps", "-n", "2", "-q", "--format", "{{.Names}}")
    assert (p.stdout, p.stderr) == ("p-d\np-c\n", "")
    p = scenario.run("ps", "-l", "-q", "--format", "table")
    assert (p.stdout, p.stderr) == (ids["d"][:12] + "\n", "")
    p = scenario.run("ps", "-n", "1", "--format", "table {{.Names}}\t{{.Status}}")
    assert p.stdout == "NAMES     STATUS\np-d       Created\n"
    # docker's `raw`: a block per container (-s adds its size), its ID alone with -q
    p = scenario.run("ps", "-n", "2", "--format", "raw", "-s")
    blocks = p.stdout.split("\n\n")
    assert blocks[0].splitlines()[:3] == [f"container_id: {ids['d'][:12]}", "image: pl/busybox:1", 'command: "true"']
    assert blocks[0].splitlines()[4:] == ["state: created", "status: Created", "names: p-d", "labels:", "ports:",
                                          "size: 0B (virtual 1.98MB)"]
    assert len(blocks) == 3 and blocks[2] == "" and "state: running" in blocks[1]
    p = scenario.run("ps", "-l", "-q", "--format", "raw", "--no-trunc")
    assert p.stdout == f"container_id: {ids['d']}\n"


@pytest.mark.parametrize("value,error", BAD, ids=[v for v, _ in BAD])
def test_refused_counts_are_pflags(scenario, value, error):
    p = scenario.run("ps", "-n", value, check=False)
    assert (p.returncode, p.stdout) == (125, "")
    assert p.stderr == (f'invalid argument "{value}" for "-n, --last" flag: strconv.ParseInt: parsing "{value}": '
                        f"{error}\nSee 'lamina ps --help'.\n")


def test_the_api_limit(scenario):
    """GET /containers/json?limit= (the same engine code), and docker's CLI sending it."""
    from api_fixtures import Service

    service = Service(scenario.root)
    try:
        def names(query: str) -> tuple[int, object]:
            status, body = service.json("GET", f"/v1.41/containers/json{query}")
            return status, [c["Names"][0][3:] for c in body] if status == 200 else body

        assert names("?limit=2") == (200, ["d", "c"])
        assert names("?limit=0") == (200, ["c"])
        assert names("?limit=-4") == (200, ["c"])
        assert names("?limit=1&all=1") == (200, ["d"])
        assert names('?limit=2&filters={"status":["exited","created"]}') == (200, ["d", "b"])
        # dockerd's strconv.Atoi refusal: a plain 500
        assert names("?limit=abc") == (500, {"message": 'strconv.Atoi: parsing "abc": invalid syntax'})
        assert names("?limit=1x") == (500, {"message": 'strconv.Atoi: parsing "1x": invalid syntax'})
        if os.path.exists(DOCKER):
            env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_CONFIG": "/nonexistent"}
            for flags, want in CASES:
                p = subprocess.run([DOCKER, "ps", *flags, "--format", "{{.Names}}"], capture_output=True,
                                   text=True, env=env, timeout=60)
                assert (p.returncode, [n[2:] for n in p.stdout.split()]) == (0, want), flags
    finally:
        service.stop()


def test_docker_lists_the_same(scenario, busybox_tar):
    """The scenario made on dockerd itself (names with a unique prefix, removed after)."""
    require_dockerd()
    tag = f"lamina-test-pl-{uuid.uuid4().hex[:8]}"
    docker = Scenario([DOCKER], f"{tag}:1", f"{tag}-")
    docker.run("import", str(busybox_tar), docker.image)
    try:
        docker.make()
        for flags, names in CASES:
            assert docker.ps(*flags) == scenario.ps(*flags) == names, flags
        p = docker.run("ps", "-n", "2", "-q", "--format", "{{json .State}}", "--filter", f"name=^/{tag}-")
        assert p.stdout == scenario.run("ps", "-n", "2", "-q", "--format", "{{json .State}}").stdout
        for flags in (["--format", "raw"], ["-s", "--format", "raw"], ["-q", "--format", "raw"]):
            mine = scenario.run("ps", "-n", "2", *flags).stdout
            theirs = docker.run("ps", "-n", "2", *flags, "--filter", f"name=^/{tag}-").stdout
            assert _raw(theirs, docker.prefix) == _raw(mine, ""), flags
    finally:
        docker.remove()
        docker.run("rmi", docker.image, check=False)
    assert docker.run("ps", "-a", "-q", "--filter", f"name=^/{tag}-").stdout == ""


def _raw(text: str, prefix: str) -> list[str]:
    """A raw listing without what differs between two runs: IDs, times, image names, sizes."""
    out = []
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key in ("container_id", "created_at", "image", "size") or key == "status" and value.startswith("Up "):
            value = "*"
        out.append(f"{key}: {value.replace(prefix, '')}" if value else line)
    return out
