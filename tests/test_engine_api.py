"""The engine layer and the public Python API (lamina.Client), on real stores, mounts and runc.

- the README's Python example runs as written, against a temporary store with busybox;
- the engine's operations return records and events, never print;
- the error hierarchy carries docker's exit codes and the Engine API's HTTP statuses;
- the layering holds: nothing outside lamina.cli imports it, `import lamina` stays cheap.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires_root
from registry_fixtures import docker_config, registry  # noqa: F401 - pytest fixtures

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "lamina"


@pytest.fixture
def store(tmp_path, busybox_tar, monkeypatch):
    """A store root holding busybox:latest, named by LAMINA_ROOT (as the README's
    `lamina.Client()` finds it)."""
    from lamina.engine.images import import_image
    from lamina.system import System

    root = tmp_path / "store"
    system = System(str(root))
    with open(busybox_tar, "rb") as f:
        image_id = import_image(system, f, repository="busybox")
    system.close()
    monkeypatch.setenv("LAMINA_ROOT", str(root))
    return root, str(image_id)


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


# --------------------------------------------------------------------------- the README


@requires_root
def test_readme_example_runs(store, capsys):
    root, image_id = store
    exec(compile(readme_example(), "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "b'hello\\n'"
    assert out[1] == "exited [{'Path': '/made-here', 'Kind': 1}]"
    assert out[2] == "['busybox:touched'] touch /made-here"
    assert any(line.startswith("Step 1/3 : FROM busybox") for line in out)
    assert any(line.startswith("Successfully tagged hello:1") for line in out)
    assert "b'built\\n'" in out
    assert out[-2] == "1"  # ContainerError.exit_status of `false`
    tags = eval(out[-1])  # noqa: S307 - our own printed list of lists
    assert ["busybox:latest"] in tags and ["busybox:touched"] in tags and ["hello:1"] in tags
    # the CLI sees what the API made: one store
    listing = subprocess.run([sys.executable, "-m", "lamina", "--root", str(root), "images", "--format",
                              "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True, check=True).stdout
    assert {"busybox:latest", "busybox:touched", "hello:1"} <= set(listing.split())


# --------------------------------------------------------------------------- the client


@requires_root
def test_client_run_output_and_errors(store):
    import lamina
    from lamina.errors import ContainerError, NoSuchContainer, NoSuchImage

    root, image_id = store
    with lamina.Client(root=str(root)) as client:
        assert client.containers.run("busybox", "sh -c 'echo out; echo err >&2'", remove=True) == b"out\n"
        both = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], remove=True,
                                     stderr=True)
        assert both == b"out\nerr\n"
        with pytest.raises(ContainerError) as info:
            client.containers.run("busybox", ["sh", "-c", "echo why >&2; exit 3"], remove=True)
        assert info.value.exit_status == 3 and info.value.stderr == b"why\n" and "why" in str(info.value)
        assert client.containers.list(all=True) == []  # remove=True removed both, even the failed one
        kept = client.containers.run("busybox", ["sh", "-c", "echo x > /f"])  # remove=False keeps it
        assert kept == b""
        (ctr,) = client.containers.list(all=True)
        assert ctr.status == "exited" and ctr.attrs["State"]["ExitCode"] == 0
        assert client.containers.get(ctr.name) == ctr
        assert ctr.diff() == [{"Path": "/f", "Kind": 1}]
        ctr.remove()
        with pytest.raises(NoSuchContainer):
            client.containers.get(ctr.id)
        with pytest.raises(NoSuchImage) as missing:
            client.images.get("nothing:here")
        assert missing.value.http_status == 404 and missing.value.exit_code == 1


@requires_root
def test_client_images(store):
    import lamina

    root, image_id = store
    client = lamina.Client(root=str(root))
    try:
        image = client.images.get("busybox")
        assert image.id == image_id and image.tags == ["busybox:latest"]
        assert image.attrs["RootFS"]["Type"] == "layers" and len(image.attrs["RootFS"]["Layers"]) == 1
        (entry,) = image.history()
        assert entry["Id"] == image_id and entry["Comment"] == "Imported from -"
        assert image.tag("bb", "2") and sorted(image.tags) == ["bb:2", "busybox:latest"]
        assert [i.id for i in client.images.list()] == [image_id]  # one Image per ID, not per tag
        assert client.images.remove("bb:2") == [{"Untagged": "bb:2"}]
        data = b"".join(_saved(client.system, ["busybox"]))
        client.images.remove("busybox", force=True)
        assert client.images.list() == []
        (loaded,) = client.images.load(data)
        assert loaded.id == image_id and loaded.tags == ["busybox:latest"]
    finally:
        client.close()


def _saved(system, names):
    import tempfile

    from lamina.engine.images import save

    with tempfile.TemporaryFile() as f:
        save(system, names, f.fileno())
        f.seek(0)
        yield f.read()


@requires_root
def test_client_build_log_and_failure(store, tmp_path):
    import lamina
    from lamina.errors import RunFailed

    root, _ = store
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo one > /one\n")
    client = lamina.Client(root=str(root))
    try:
        image, logs = client.images.build(path=str(ctx), tag=["a:1", "a:2"], nocache=True)
        events = list(logs)
        assert {"aux": {"ID": image.id}} in events
        assert [e["stream"] for e in events if "stream" in e][-2:] == ["Successfully tagged a:1\n",
                                                                      "Successfully tagged a:2\n"]
        assert sorted(image.tags) == ["a:1", "a:2"]
        again, logs = client.images.build(path=str(ctx), tag="a:3")  # the build memo answers
        assert again == image and "a:3" in again.tags
        assert any("Using cache" in e.get("stream", "") for e in logs)
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo before; exit 7\n")
        with pytest.raises(RunFailed) as info:
            client.images.build(path=str(ctx))
        assert info.value.exit_code == 7 and info.value.http_status == 500
        assert any("before" in e.get("stream", "") for e in info.value.build_log)
    finally:
        client.close()


# --------------------------------------------------------------------------- the engine


@requires_root
def test_engine_containers_records(store):
    from lamina.engine import containers as engine
    from lamina.engine.images import get_image
    from lamina.errors import Conflict
    from lamina.lifecycle import RunOptions
    from lamina.system import System

    root, image_id = store
    system = System(str(root))
    try:
        image = get_image(system, "busybox")
        rec = engine.create(system, image, "busybox",
                            RunOptions(cmd=("sh", "-c", "mkdir /d && echo hi > /d/f && rm /bin/ls"), name="c1"))
        assert [r.id for r in engine.list_containers(system)] == []  # only running ones
        assert [r.name for r in engine.list_containers(system, all=True)] == ["c1"]
        assert engine.summary(rec)["Names"] == ["/c1"] and engine.summary(rec)["State"] == "created"
        assert engine.run(system, rec) == 0
        changes = sorted((c.kind, c.path) for c in engine.diff(system, "c1"))
        assert changes == [("A", "/d"), ("A", "/d/f"), ("C", "/bin"), ("D", "/bin/ls")]
        doc = engine.inspect_container(system, "c1")
        assert doc["State"]["Status"] == "exited" and doc["Name"] == "/c1" and doc["Image"] == image_id
        json.dumps(doc)  # an Engine API server serialises it as is
        new_id = engine.commit(system, "c1", repository="c1img:v1", message="made d")
        from lamina.engine.images import history, list_images

        rows = list_images(system)
        assert ("c1img", "v1", "<none>") in [r[:3] for r in rows]
        assert history(system, "c1img:v1")[0][0] == str(new_id)
        assert history(system, "c1img:v1")[0][4] == "made d"
        out = io.BytesIO()
        engine.export(system, "c1", out)
        import tarfile

        names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
        assert "d/f" in names and "bin/ls" not in names
        from lamina.engine.images import remove

        with pytest.raises(Conflict) as info:
            remove(system, image_id)  # c1 uses it
        assert info.value.http_status == 409
        engine.remove(system, "c1")
        assert engine.list_containers(system, all=True) == []
    finally:
        system.close()


def test_events_stream_runs_in_order_and_raises_at_the_end():
    from lamina.engine.events import collect, run_with_events
    from lamina.errors import RegistryError

    def work(sink):
        sink.line("Using default tag: latest")
        sink.status("abc", "Pulling fs layer")
        sink.progress("abc", "Downloading", 5, 10)
        sink.write("Step 1/2 : FROM x\n ---> ab")
        sink.write("c\n")
        return "done"

    stream = run_with_events(work)
    assert list(stream) == [
        {"status": "Using default tag: latest"},
        {"status": "Pulling fs layer", "id": "abc"},
        {"status": "Downloading", "id": "abc", "progressDetail": {"current": 5, "total": 10}},
        {"stream": "Step 1/2 : FROM x\n"},
        {"stream": " ---> abc\n"},
    ]
    assert stream.result == "done"
    assert collect(work)[0] == "done"

    def failing(sink):
        sink.line("before")
        raise RegistryError("Error response from daemon: manifest unknown")

    stream = run_with_events(failing)
    seen = []
    with pytest.raises(RegistryError):
        for event in stream:
            seen.append(event)
    assert seen == [{"status": "before"}]


@requires_root
def test_pull_progress_as_events(store, registry, docker_config):  # noqa: F811
    import lamina
    from lamina.engine.images import push
    from lamina.transfer.progress import QuietProgress

    root, image_id = store
    client = lamina.Client(root=str(root))
    try:
        client.images.get("busybox").tag(f"{registry.host}/api/bb", "1")
        push(client.system, f"{registry.host}/api/bb:1", progress=QuietProgress())
        client.images.remove(f"{registry.host}/api/bb:1")
        client.images.remove("busybox")
        stream = client.images.pull(f"{registry.host}/api/bb", "1", stream=True)
        events = list(stream)
        assert {"status": "1: Pulling from api/bb"} in events
        assert any(e.get("status", "").startswith("Status: Downloaded newer image") for e in events)
        assert stream.result.id == image_id and stream.result.tags == [f"{registry.host}/api/bb:1"]
        assert client.images.pull(f"{registry.host}/api/bb:1").id == image_id  # blocking form
    finally:
        client.close()


# --------------------------------------------------------------------------- errors and layering


def test_error_hierarchy_codes_and_statuses():
    from lamina import errors
    from lamina.builder.executor import RunFailed
    from lamina.builder.instructions import InstructionError
    from lamina.builder.shell import ShellError
    from lamina.remote.auth import CredentialsError

    assert (RunFailed, ShellError, InstructionError, CredentialsError) == (
        errors.RunFailed, errors.ShellError, errors.InstructionError, errors.CredentialsError)
    statuses = {
        errors.NoSuchImage("x"): (404, 1), errors.NoSuchContainer("x"): (404, 1),
        errors.Conflict("in use"): (409, 1), errors.UsageError("bad"): (400, 1),
        errors.InvalidReference("Ubuntu"): (400, 1), errors.BuildError("Dockerfile:1: x"): (400, 1),
        errors.StoreError("disk"): (500, 1), errors.RegistryError("down"): (500, 1),
        errors.RuntimeFailure("runc"): (500, 125), errors.ContainerCommandNotFound("x"): (400, 127),
        errors.ContainerCommandNotExecutable("x"): (400, 126), errors.RunFailed("false", 2): (500, 2),
        errors.CredentialsError("helper"): (500, 1),
    }
    for error, (status, code) in statuses.items():
        assert isinstance(error, errors.LaminaError)
        assert (error.http_status, error.exit_code) == (status, code), type(error).__name__
    located = errors.ShellError("bad substitution").at("Dockerfile", 3)
    assert type(located) is errors.BuildError and str(located) == "Dockerfile:3: bad substitution"
    e = errors.ContainerError("c", 2, "false", "busybox", b"")
    assert e.exit_status == 2 and str(e) == "Command 'false' in image 'busybox' returned non-zero exit status 2"


def test_no_lazy_import_of_the_cli_outside_it():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "cli") or path.name == "__main__.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\b(from|import)\s+lamina\.cli\b|from\s+\.+cli\b", line):
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert offenders == []


def _imported_after(code: str, already: str = "") -> set[str]:
    probe = (f"import sys; {already or 'pass'}; before = set(sys.modules); {code}; "
             "print('\\n'.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_lamina_stays_cheap_and_the_engine_is_lazy():
    loaded = _imported_after("import lamina")
    assert not {m for m in loaded if m.startswith("lamina.")}, loaded  # no client, errors, engine
    loaded = _imported_after("import lamina; lamina.Client")
    assert {"lamina.client", "lamina.errors"} <= loaded and "lamina.system" not in loaded
    # the listing path of `ps`: the engine module itself adds nothing
    warm = "import lamina, __future__"
    assert _imported_after("import lamina.engine.containers", warm) == {"lamina.engine", "lamina.engine.containers"}
    assert _imported_after("import lamina.engine.images", warm) == {"lamina.engine", "lamina.engine.images"}


def test_engine_never_prints():
    for path in (SRC / "engine").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"\bprint\(|sys\.std(out|err)|argparse|SystemExit", text), path.name
