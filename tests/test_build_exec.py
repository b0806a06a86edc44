"""`lamina build`: every instruction and flag, on real overlay mounts and real runc.

Each test writes a small context, builds it with the CLI against one store that
holds a busybox base image (`base:latest`), and checks the log, the image
config and the files with `run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires_root

pytestmark = requires_root
LAMINA = [sys.executable, "-m", "lamina"]


def lamina(root, *args, input=None, check=True, timeout=180, cwd=None):
    p = subprocess.run(LAMINA + ["--root", str(root)] + [str(a) for a in args], input=input,
                       capture_output=True, timeout=timeout, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout.decode()}\n{p.stderr.decode()}")
    return p


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar):
    r = tmp_path_factory.mktemp("build-store") / "store"
    lamina(r, "import", busybox_tar, "base:latest")
    return r


def ctx(tmp_path: Path, dockerfile: str, files: dict | None = None) -> Path:
    d = tmp_path / "ctx"
    d.mkdir(parents=True, exist_ok=True)
    (d / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
    return d


def build(root, d, *flags, check=True):
    return lamina(root, "build", *flags, d, check=check)


def config(root, name) -> dict:
    return json.loads(lamina(root, "inspect", "--type", "image", name).stdout)[0]


def run(root, image, *cmd) -> str:
    return lamina(root, "run", "--rm", image, *cmd).stdout.decode()


# --------------------------------------------------------------------- log and layers


def test_classic_log_and_history(root, tmp_path):
    d = ctx(tmp_path, "ARG X=1\nFROM base\nENV A=1\nCOPY a.txt /srv/\nRUN echo hi\nCMD echo x\n", {"a.txt": "hello\n"})
    out = build(root, d, "-t", "logshape:1").stdout.decode().splitlines()
    assert out[0].startswith("Sending build context to Docker daemon ")
    assert out[1:4] == ["Step 1/6 : ARG X=1", "Step 2/6 : FROM base", out[3]]
    assert out[3].startswith(" ---> ") and len(out[3]) == 18
    assert "Step 4/6 : COPY a.txt /srv/" in out
    i = out.index("Step 5/6 : RUN echo hi")
    assert out[i + 1].startswith(" ---> Running in ") and out[i + 2] == "hi"
    assert out[i + 3] == "Removing intermediate container " + out[i + 1][17:]
    assert out[-2].startswith("Successfully built ") and out[-1] == "Successfully tagged logshape:1"
    cfg = config(root, "logshape:1")
    assert cfg["Config"]["Cmd"] == ["/bin/sh", "-c", "echo x"]
    assert cfg["Config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1"]
    hist = json.loads(lamina(root, "history", "--no-trunc", "--format", "{{json .}}", "logshape:1")
                      .stdout.decode().splitlines()[0])
    assert hist["CreatedBy"] == '/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "echo x"]'


def test_one_layer_per_run(root, tmp_path):
    two = ctx(tmp_path / "a", "FROM base\nRUN echo 1 > /one\nRUN echo 2 > /two\n")
    one = ctx(tmp_path / "b", "FROM base\nRUN echo 1 > /one && echo 2 > /two\n")
    build(root, two, "-t", "layers:two")
    build(root, one, "-t", "layers:one")
    n_two = len(config(root, "layers:two")["RootFS"]["Layers"])
    n_one = len(config(root, "layers:one")["RootFS"]["Layers"])
    assert n_two == n_one + 1 == 3
    assert run(root, "layers:two", "cat", "/one", "/two") == "1\n2\n"


def test_failing_run_and_closed_stdin(root, tmp_path):
    d = ctx(tmp_path, "FROM base\nRUN echo before\nRUN exit 7\n")
    p = build(root, d, "-t", "fails:1", check=False)
    assert p.returncode == 7
    assert "The command '/bin/sh -c exit 7' returned a non-zero code: 7" in p.stderr.decode()
    # a prompt reads EOF at once (stdin is /dev/null), like apt install without -y
    d = ctx(tmp_path / "s", "FROM base\nRUN read answer; echo \"got[$answer]\"; test -n \"$answer\"\n")
    p = build(root, d, check=False)
    assert p.returncode == 1 and "got[]" in p.stdout.decode()
    assert lamina(root, "ps", "-a", "-q").stdout.strip() == b""


# --------------------------------------------------------------------- ENV / ARG


def test_env_forms_and_substitution(root, tmp_path):
    d = ctx(tmp_path, 'FROM base\nENV A=1 B="x y"\nENV C d e\nENV A=2 D=$A E=${UNSET:-dflt} F=\\$A\n'
                      'LABEL l1="$B" "l 2"=v\nRUN echo "$A|$B|$C|$D|$E|$F" > /env\n')
    build(root, d, "-t", "env:1")
    cfg = config(root, "env:1")["Config"]
    assert cfg["Env"][1:] == ["A=2", "B=x y", "C=d e", "D=1", "E=dflt", "F=$A"]
    assert cfg["Labels"] == {"l1": "x y", "l 2": "v"}
    assert run(root, "env:1", "cat", "/env") == "2|x y|d e|1|dflt|$A\n"


def test_arg_scopes_and_history(root, tmp_path):
    df = ("ARG BASE=base\nARG GLOBAL=g\nFROM ${BASE}\nRUN echo \"[$GLOBAL]\" > /before\n"
          "ARG GLOBAL\nARG V=dv\nARG W\nRUN echo \"$GLOBAL $V [$W]\" > /args\n")
    d = ctx(tmp_path, df)
    p = build(root, d, "-t", "args:1", "--build-arg", "V=cli", "--build-arg", "UNUSED=1")
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in p.stdout.decode()
    assert run(root, "args:1", "cat", "/before", "/args") == "[]\ng cli []\n"
    cfg = config(root, "args:1")["Config"]
    assert not any(e.startswith(("V=", "GLOBAL=")) for e in cfg["Env"])  # ARGs are not persisted
    created = lamina(root, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "args:1").stdout.decode()
    assert created.splitlines()[0] == '|2 GLOBAL=g V=cli /bin/sh -c echo "$GLOBAL $V [$W]" > /args'


def test_env_wins_over_arg_and_proxy_args(root, tmp_path):
    d = ctx(tmp_path, "FROM base\nARG X=arg\nENV X=env\nRUN echo \"$X $HTTP_PROXY\" > /x\n")
    build(root, d, "-t", "argenv:1", "--build-arg", "HTTP_PROXY=http://proxy:3128")
    assert run(root, "argenv:1", "cat", "/x") == "env http://proxy:3128\n"
    created = lamina(root, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "argenv:1").stdout.decode()
    assert "proxy" not in created  # undeclared proxy args stay out of history


# --------------------------------------------------------------------- WORKDIR / USER


def test_workdir_and_user(root, tmp_path):
    d = ctx(tmp_path, "FROM base\nWORKDIR /a\nWORKDIR b\nRUN pwd > /pwd\nUSER app\nWORKDIR /home/app/w\n"
                      "RUN id -u > id && touch mine\nUSER 0\nRUN stat -c '%u:%g %a' /home/app/w /home/app/w/mine "
                      "/a/b > /own\n")
    build(root, d, "-t", "wd:1")
    cfg = config(root, "wd:1")["Config"]
    assert cfg["WorkingDir"] == "/home/app/w" and cfg["User"] == "0"
    assert run(root, "wd:1", "cat", "/pwd", "/home/app/w/id") == "/a/b\n1000\n"
    # BuildKit: a WORKDIR created under USER belongs to that user
    assert run(root, "wd:1", "cat", "/own") == "1000:1000 755\n1000:1000 644\n0:0 755\n"


# --------------------------------------------------------------------- CMD / ENTRYPOINT / metadata


@pytest.mark.parametrize("df,cmd,entrypoint,output", [
    ('CMD ["echo", "a"]', ["echo", "a"], None, "a\n"),
    ("CMD echo b", ["/bin/sh", "-c", "echo b"], None, "b\n"),
    ('ENTRYPOINT ["echo", "e"]\nCMD ["c"]', ["c"], ["echo", "e"], "e c\n"),
    ('ENTRYPOINT echo e', None, ["/bin/sh", "-c", "echo e"], "e\n"),
    ('CMD ["c"]\nENTRYPOINT ["echo"]', ["c"], ["echo"], "c\n"),
    ('ENTRYPOINT ["echo", "p"]\nCMD q r', ["/bin/sh", "-c", "q r"], ["echo", "p"], "p /bin/sh -c q r\n"),
])
def test_cmd_entrypoint(root, tmp_path, df, cmd, entrypoint, output):
    d = ctx(tmp_path, f"FROM base\n{df}\n")
    build(root, d, "-t", "cmd:t")
    cfg = config(root, "cmd:t")["Config"]
    assert cfg["Cmd"] == cmd and cfg["Entrypoint"] == entrypoint
    assert run(root, "cmd:t") == output


def test_entrypoint_clears_inherited_cmd(root, tmp_path):
    build(root, ctx(tmp_path / "p", 'FROM base\nCMD ["parent"]\n'), "-t", "ep:parent")
    build(root, ctx(tmp_path / "c", 'FROM ep:parent\nENTRYPOINT ["echo"]\n'), "-t", "ep:child")
    assert config(root, "ep:child")["Config"]["Cmd"] is None


def test_metadata_instructions(root, tmp_path):
    df = ("FROM base\nMAINTAINER someone <s@example.com>\nEXPOSE 80 443/udp 8000-8002\n"
          'VOLUME ["/data"]\nVOLUME /v1 /v2\nSTOPSIGNAL SIGINT\n'
          "HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q localhost || exit 1\n"
          'SHELL ["/bin/sh", "-ec"]\nRUN echo "$0 $-" > /shell\nCMD echo shell-form\n'
          "ONBUILD RUN echo triggered > /trig\n")
    build(root, ctx(tmp_path, df), "-t", "meta:1")
    info = config(root, "meta:1")
    cfg = info["Config"]
    assert info["Author"] == "someone <s@example.com>"
    assert cfg["ExposedPorts"] == {p: {} for p in ("80/tcp", "443/udp", "8000/tcp", "8001/tcp", "8002/tcp")}
    assert cfg["Volumes"] == {"/data": {}, "/v1": {}, "/v2": {}}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 5_000_000_000,
                                  "Timeout": 2_000_000_000, "Retries": 4}
    assert cfg["Shell"] == ["/bin/sh", "-ec"] and cfg["Cmd"] == ["/bin/sh", "-ec", "echo shell-form"]
    assert cfg["OnBuild"] == ["RUN echo triggered > /trig"]
    assert "e" in run(root, "meta:1", "cat", "/shell").split()[1]
    build(root, ctx(tmp_path / "n", "FROM meta:1\nHEALTHCHECK NONE\n"), "-t", "meta:none")
    assert config(root, "meta:none")["Config"]["Healthcheck"] == {"Test": ["NONE"]}


def test_onbuild_runs_in_child_only(root, tmp_path):
    build(root, ctx(tmp_path / "p", "FROM base\nONBUILD RUN echo from-trigger > /trig\n"), "-t", "onb:parent")
    p = build(root, ctx(tmp_path / "c", "FROM onb:parent\nRUN cat /trig\n"), "-t", "onb:child")
    assert "# Executing 1 build trigger" in p.stdout.decode()
    assert run(root, "onb:child", "cat", "/trig") == "from-trigger\n"
    assert config(root, "onb:child")["Config"]["OnBuild"] is None  # grandchildren never see it
    build(root, ctx(tmp_path / "g", "FROM onb:child\nRUN test -f /trig\n"), "-t", "onb:grand")


# --------------------------------------------------------------------- multi-stage


def test_multistage_target_and_skipping(root, tmp_path):
    df = ("FROM base AS builder\nRUN echo built > /artifact\n"
          "FROM base AS broken\nRUN exit 9\n"
          "FROM builder AS derived\nRUN echo more >> /artifact\n"
          "FROM base\nCOPY --from=builder /artifact /a1\nCOPY --from=0 /artifact /a2\n"
          "COPY --from=derived /artifact /a3\n")
    p = build(root, ctx(tmp_path, df), "-t", "ms:final")
    assert "RUN exit 9" not in p.stdout.decode()  # the target does not need that stage
    assert run(root, "ms:final", "cat", "/a1", "/a2", "/a3") == "built\nbuilt\nbuilt\nmore\n"
    build(root, ctx(tmp_path, df), "--target", "builder", "-t", "ms:builder")
    assert run(root, "ms:builder", "ls", "/") .count("artifact") == 1
    p = build(root, ctx(tmp_path, df), "--target", "broken", check=False)
    assert p.returncode == 9
    p = build(root, ctx(tmp_path, df), "--target", "nosuch", check=False)
    assert p.returncode != 0 and "nosuch" in p.stderr.decode()


def test_copy_from_image(root, tmp_path):
    build(root, ctx(tmp_path, "FROM base\nCOPY --from=base:latest /etc/passwd /copied\n"), "-t", "cfi:1")
    assert "app:x:1000" in run(root, "cfi:1", "cat", "/copied")


# --------------------------------------------------------------------- flags and contexts


def test_flags_file_label_iidfile_quiet_network(root, tmp_path):
    d = ctx(tmp_path, "", {"other.Dockerfile": "FROM base\nRUN cat /proc/net/dev | grep -c : > /ifaces\n"})
    iid = tmp_path / "iid"
    p = build(root, d, "-q", "-f", d / "other.Dockerfile", "--label", "k=v", "--iidfile", iid,
              "--network", "none", "-t", "flags:1")
    image_id = p.stdout.decode().strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71 and iid.read_text() == image_id
    assert config(root, "flags:1")["Config"]["Labels"] == {"k": "v"}
    assert run(root, "flags:1", "cat", "/ifaces") == "1\n"  # only lo


def test_stdin_dockerfile_and_tar(root, tmp_path):
    p = lamina(root, "build", "-t", "stdin:df", "-", input=b"FROM base\nRUN echo piped > /p\n")
    assert "Successfully tagged stdin:df" in p.stdout.decode()
    d = ctx(tmp_path, "FROM base\nCOPY f /f\n", {"f": "from-tar\n"})
    tar = subprocess.run(["tar", "-C", d, "-cz", "."], capture_output=True, check=True).stdout
    lamina(root, "build", "-t", "stdin:tar", "-", input=tar)
    assert run(root, "stdin:tar", "cat", "/f") == "from-tar\n"
    assert os.listdir(Path(root) / "tmp") == []


def test_dockerignore(root, tmp_path):
    files = {".dockerignore": "*.log\nsecret/\n!secret/keep\n", "a.log": "x", "b.txt": "b", "secret/pw": "p",
             "secret/keep": "k"}
    d = ctx(tmp_path, "FROM base\nCOPY . /c/\n", files)
    build(root, d, "-t", "ign:1")
    listing = run(root, "ign:1", "find", "/c", "-type", "f").split()
    assert sorted(listing) == ["/c/.dockerignore", "/c/Dockerfile", "/c/b.txt", "/c/secret/keep"]
    p = build(root, ctx(tmp_path, "FROM base\nCOPY a.log /\n", files), check=False)
    assert p.returncode != 0 and "Dockerfile:2" in p.stderr.decode()


def test_scratch_stage(root, tmp_path):
    df = ("FROM base AS b\nRUN echo built > /out\nFROM scratch\nCOPY --from=b /bin/busybox /bin/busybox\n"
          "COPY --from=b /out /\nCOPY f /\nWORKDIR /w\nCMD [\"/bin/busybox\", \"cat\", \"/out\", \"/f\"]\n")
    build(root, ctx(tmp_path, df, {"f": "data\n"}), "-t", "scratch:1")
    assert run(root, "scratch:1") == "built\ndata\n"
    info = config(root, "scratch:1")
    assert len(info["RootFS"]["Layers"]) == 4 and info["Config"]["WorkingDir"] == "/w"
    p = build(root, ctx(tmp_path / "e", "FROM scratch\n"), check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr.decode()


def test_dockerfile_from_stdin_with_dir_context(root, tmp_path):
    d = ctx(tmp_path, "", {"f": "ctx-file\n"})
    lamina(root, "build", "-f", "-", "-t", "stdin:f", d, input=b"FROM base\nCOPY f /f\n")
    assert run(root, "stdin:f", "cat", "/f") == "ctx-file\n"


def test_context_size_line():
    from lamina.builder.log import human_size

    assert [human_size(n) for n in (0, 512, 3072, 294_500_000, 1_234_567_890)] == \
        ["0B", "512B", "3.072kB", "294.5MB", "1.235GB"]


def test_copy_storage_driver(tmp_path, busybox_tar):
    r = tmp_path / "store"
    lamina(r, "--storage-driver", "copy", "import", busybox_tar, "base:latest")
    d = ctx(tmp_path, "FROM base\nCOPY f /d/\nRUN echo run >> /d/f && rm /bin/vi\nWORKDIR /w\n", {"f": "f\n"})
    p = lamina(r, "--storage-driver", "copy", "build", "-t", "cp:1", d)
    assert "Successfully tagged cp:1" in p.stdout.decode()
    out = lamina(r, "--storage-driver", "copy", "run", "--rm", "cp:1", "sh", "-c", "cat /d/f; ls /bin/vi; pwd")
    assert out.stdout.decode().startswith("f\nrun\n") and out.stdout.decode().endswith("/w\n")


def test_run_stderr_goes_to_the_build_stream(root, tmp_path):
    p = build(root, ctx(tmp_path, "FROM base\nRUN echo to-out; echo to-err >&2\n"), "--no-cache")
    out = p.stdout.decode().splitlines()
    assert "to-out" in out and "to-err" in out and b"to-err" not in p.stderr


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_no_orphan_blobs(tmp_path, busybox_tar, driver):
    r = tmp_path / "store"
    lamina(r, "--storage-driver", driver, "import", busybox_tar, "base:latest")
    d = ctx(tmp_path, "FROM base\nRUN true\nWORKDIR /\nRUN echo x > /x\nENV A=1\n")
    lamina(r, "--storage-driver", driver, "build", "-t", "orph:1", d)
    check = lamina(r, "--storage-driver", driver, "system", "check")
    assert b"unreferenced" not in check.stdout + check.stderr
    assert len(config(r, "orph:1")["RootFS"]["Layers"]) == 2
