"""The template table of tests/test_cli_gotemplate.py, and its recorder.

`python tests/gotemplate_cases.py` (root, dockerd running) makes the docker objects,
runs every template through the real docker CLI and writes what docker printed,
together with the objects the templates saw, to tests/data/gotemplate_docker.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "gotemplate_docker.json"
IMAGE, CONTAINER = "lamina-gotemplate:1", "lamina-gotemplate-c"
IMPORT_CHANGES = ['LABEL com.example.a=1 b=two "my-label_x"=z', "ENV A=1 B=x<y&z", 'CMD ["sleep","1000"]',
                  "EXPOSE 80/tcp", "WORKDIR /srv"]
CONTAINER_LABELS = ["k1=v1", "k2=v2", "com.example.vendor=ACME"]

# `inspect -f` on the image
INSPECT_IMAGE = [
    "{{.Id}}", "{{.Nope}}", "{{.Config.Labels.nope}}", "{{.Config.Labels}}", "{{.Config.Env}}", "{{.Size}}",
    "{{.RootFS}}", "{{.Config.ExposedPorts}}", "{{json .Config.Labels}}", "{{json .Config.Env}}",
    "{{json .RootFS}}", "{{json .Config.ExposedPorts}}", "{{index .Config.Labels \"b\"}}",
    "{{index .Config.Labels \"nope\"}}", "{{index .Config.Env 1}}", "{{index .Config.Env 5}}",
    "{{len .Config.Env}}", "{{len .Id}}", "{{len .Size}}", "{{printf \"%q %5.2f %x\" .Comment 3.14159 255}}",
    "{{printf \"%d|%5d|%-5d|%05d|%x|%X|%o|%b\" .Size 42 42 42 255 255 8 5}}",
    "{{printf \"%s|%10s|%-10s|%.3s\" .Os .Os .Os .Architecture}}", "{{printf \"%v %v\" .Config.Env .Config.Labels}}",
    "{{printf \"%t %v\" true nil}}",
    "{{printf \"%e %E %g %G %.2e %8.3f\" 1234.5678 1234.5678 1234.5678 0.000012 1e6 3.14159}}",
    "{{printf \"%d %s\" \"x\" 1}}", "{{printf \"%d\"}}", "{{printf \"%d\" 1 2}}", "{{printf \"%c %U %q\" 65 65 65}}",
    "{{printf \"%T %T %T %T\" .Size .Id .Config.Env 1.5}}", "{{print 1 2 \"a\" \"b\" 3}}", "{{println .Os 1}}",
    "{{range .Config.Env}}[{{.}}]{{end}}", "{{range $i, $e := .Config.Env}}{{$i}}={{$e}};{{end}}",
    "{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}} {{end}}", "{{range .Nope}}x{{else}}empty{{end}}",
    "{{range .Config.Env}}{{if eq . \"A=1\"}}{{continue}}{{end}}{{.}}{{end}}",
    "{{range .Config.Env}}{{.}}{{break}}{{end}}", "{{range 3}}{{.}}{{end}}",
    "{{if .Config.Labels}}has{{else}}none{{end}}",
    "{{if eq .Os \"linux\"}}L{{else if eq .Os \"windows\"}}W{{else}}?{{end}}",
    "{{with .Config.Labels.b}}b={{.}}{{end}}", "{{with .Config.Labels.nope}}x{{else}}no{{end}}",
    "{{$x := .Os}}{{$x}}-{{$x = \"y\"}}{{$x}}", "{{$}}" [0:0] + "{{$.Os}}", "{{eq .Os \"linux\" \"darwin\"}}",
    "{{eq .Size 1}}", "{{eq .Os 1}}", "{{ne .Os \"x\"}}", "{{lt 1 2}} {{le 2 2}} {{gt 1.5 2.5}} {{ge \"b\" \"a\"}}",
    "{{lt .Os 1}}", "{{lt true false}}", "{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" \"z\"}} {{or 0 \"\"}} {{not 0}}",
    "{{and .Nope .Os}}", "{{or .Config.Labels.nope \"dflt\"}}", "{{not .Config.Env}}",
    "{{slice .Os 1 3}} {{slice .Config.Env 1}}", "{{slice .Os 3 1}}", "{{html \"<a href='x'>&\"}}",
    "{{js \"it's <b> \\\"q\\\"\"}}", "{{urlquery \"a b&c=d/é\"}}", "{{.Os | printf \"%s-%s\" \"pre\"}}",
    "{{.Os | upper | printf \"%q\"}}", "{{- \"  trimmed  \" -}}  ", "a  {{- .Os -}}  b", "{{/* a comment */}}ok",
    "{{- /* trimmed comment */ -}} x", "{{define \"T\"}}[{{.}}]{{end}}{{template \"T\" .Os}}",
    "{{block \"B\" .Architecture}}<{{.}}>{{end}}", "{{template \"nope\"}}", "{{json .Config.Cmd}}",
    "{{join .Config.Env \",\"}}", "{{join .Config.Cmd \" \"}}", "{{split .Comment \" \"}}",
    "{{title \"hello wide-world\"}}",
    "{{lower \"MiXeD\"}} {{upper .Os}}", "{{pad .Os 2 3}}|", "{{truncate .Id 10}}", "{{truncate .Os 99}}",
    "{{json .Nope}}", "{{json .Config.Labels.b}}", "{{json 1.5}} {{json \"<&>\"}} {{json true}}",
    "{{foo}}", "{{if}}", "{{.Os", "{{if .Os}}x", "{{end}}", "{{else}}", "{{$undefined}}", "{{range}}{{end}}",
    "{{.Os.Foo}}", "{{.Config.Labels.b.c}}", "{{index .Os 0}}", "{{index 1 0}}", "{{len 3}}", "{{1 2}}",
    "{{nil}}", "{{\"a\" | 3}}", "{{(1}}", "{{)}}", "{{.Os 1}}", "{{template}}", "{{break}}",
    "{{'a'}} {{0x1F}} {{1e3}} {{1.50}}",
    "{{\"unterminated}}", "{{/* unclosed comment }}", "{{printf \"%v\" .Config.Labels.nope}}",
    "{{.Config.Labels.nope | printf \"%v\"}}", "{{len .Config.Labels.nope}}",
]

# `inspect -f` on the container
INSPECT_CONTAINER = [
    "{{.Name}}", "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}", "{{.Config.Labels}}",
    "{{index .Config.Labels \"com.example.vendor\"}}", "{{.HostConfig.NetworkMode}}", "{{.Config.Hostname | len}}",
    "{{.Size}}", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "{{.Path}} {{.Args}}",
    "{{json .Config.Cmd}}", "{{.RestartCount}}", "{{.Config.WorkingDir}}", "{{if .State.Running}}up{{else}}down{{end}}",
    "{{.State}}", "{{json .State}}", "{{.HostConfig.LogConfig}}", "{{.GraphDriver.Name}}", "{{.Mounts}}",
    "{{.HostConfig.RestartPolicy}}", "{{.State.Health}}", "{{with .State.Health}}{{.Status}}{{else}}none{{end}}",
    "{{.Config.Healthcheck}}", "{{.ID}}", "{{.Id | len}}", "{{.ID}} {{.Id}}",
]

# `images --format` (on the image), `ps -a --format` (on the container), `history --format`
IMAGES = [
    "{{.Repository}}:{{.Tag}}", "{{json .ID}}", "{{.Nope}}", "{{foo}}", "{{.Size}} {{.VirtualSize}}",
    "table {{.Repository}}\t{{.Tag}}\t{{.Size}}", "table {{.ID}}", "table {{json .ID}}\t{{lower .Repository}}",
    "{{.Containers}} {{.SharedSize}} {{.UniqueSize}} {{.Digest}}", "table {{.Repository}}\\t{{.Digest}}",
    "  {{.Tag}}  ", "{{.Repository | upper}}\\n{{.Tag}}", "{{if eq .Tag \"1\"}}one{{end}}", "{{.ID | len}}",
]
PS = [
    "{{.Names}}", "{{.Label \"k1\"}}|{{.Label \"nope\"}}", "{{.Labels}}", "{{.Networks}}", "{{.Nope}}", "{{.Label}}",
    "{{foo}}", "table {{.Names}}\t{{.Label \"com.example.vendor\"}}\t{{.Networks}}", "table {{.ID}}\t{{.Image}}",
    "{{.Command}} {{.State}} {{.Status}}", "table {{.Names}}\t{{.Mounts}}\t{{.Ports}}\t{{.LocalVolumes}}",
    "{{.Size}}", "table {{.Size}}\t{{.Names}}", "{{json .Names}}", "{{range split .Labels \",\"}}<{{.}}>{{end}}",
    "table {{.Label \"my-label_x\"}}\t{{.Names}}",
]
HISTORY = [
    "{{.ID}}", "{{.Comment}}", "{{.Size}}", "table {{.ID}}\t{{.Size}}\t{{.Comment}}", "{{.Nope}}",
    "table {{.CreatedBy}}\t{{.Comment}}", "{{json .Comment}}",
]


# printf, numbers, control structures, functions and errors beyond the basics
INSPECT_IMAGE += [
    '{{printf "%v %v %v %v %v" 1e6 100000.0 123456789.0 0.0001 0.00001}}',
    '{{printf "%6.2f|%-8.3f|%+d|% d" 2.5 2.5 5 5}}',
    '{{printf "%x %X %q" "hi" "hi" "tab\there"}}', '{{printf "%5t|%-7v|%3s" true .Os "abcdef"}}',
    '{{printf "%08.3f|%+.1e|%#x|%#o" 3.14159 12345.678 255 8}}', '{{printf "%s" .Config.Env}}',
    '{{printf "%q" .Config.Env}}',
    '{{printf "%d" .Config.Env}}', '{{printf "%v" .Config.ExposedPorts}}', '{{printf "%%|%5.1f%%" 99.5}}',
    '{{1.5}} {{-2}} {{3.0}} {{1e21}} {{0.000001}}',
    '{{with $x := .Os}}{{$x}}{{end}}', '{{with .Config.Labels.nope}}a{{else with .Os}}b={{.}}{{end}}',
    '{{range $k, $v := .Config.Labels}}{{if eq $k "com.example.a"}}{{break}}{{end}}{{$k}}{{end}}',
    '{{range $i, $c := .Config.Cmd}}{{if $i}},{{end}}{{$c}}{{end}}', '{{range .Config.Env}}{{else}}none{{end}}',
    '{{define "row"}}{{.}};{{end}}{{range .Config.Env}}{{template "row" .}}{{end}}',
    '{{define "x"}}{{$}}{{end}}{{template "x" .Os}}', 'line1\n{{- .Os}}\n  {{- "z" }}\n',
    '{{if and .Os (eq .Architecture "amd64")}}ok{{end}}', '{{(index .Config.Env 0) | len}}',
    '{{index .Config.Labels "b" | upper}}', '{{.Config.Env | join "+"}}', '{{join "+" .Config.Env}}',
    '{{ .Os }}{{\t.Os\n}}', '{{json .ContainerConfig.Labels}}', '{{.Config.Volumes}}', '{{.Config.Entrypoint}}',
    '{{.Config.Healthcheck}}', '{{len .RootFS.Layers}}', '{{json .Metadata}}', '{{.GraphDriver.Name}}',
    '{{title .Os}} {{split "a::b" ":"}} {{len (split "" ",")}}', '{{truncate "héllo" 3}}',
    '{{eq 1 1.0}}', '{{eq "a" "a" }}', '{{ne 1 2}} {{lt 1.5 2}} {{lt -1 1}}', '{{eq .Config.Env .Config.Env}}',
    '{{not}}', '{{and}}', '{{index .Config.Env -1}}', '{{index .Config.Env "x"}}', '{{index .Config.Labels 1}}',
    '{{slice .Os 1 99}}', '{{slice .Config.Env 0 1 2}}', '{{slice .Os 0 1 2}}', '{{.Nope.Deeper}}', '{{$.Nope}}',
    '{{$x := 1}}{{$x := 2}}{{$x}}', '{{$a, $b := 1}}', '{{range $a, $b, $c := .Config.Env}}{{end}}',
    '{{printf}}', '{{printf 1}}', '{{call .Os}}', '{{html .Config.Env}} {{urlquery 1 2}} {{js 1 "a"}}',
    '{{print}} {{print nil}} {{print .Config.Labels.nope}}', '{{println}}',
    '{{range .Config.Env}}{{println .}}{{end}}', '{{range $p, $c := .Config.ExposedPorts}}{{$p}} {{$c}}{{end}}',
    '{{.RepoTags}} {{index .RepoTags 0}}', '{{.Architecture}}{{"\n"}}', '{{json .Config.Labels | len}}',
    '{{if not .Config.Entrypoint}}no entrypoint{{end}}', '{{range .RootFS.Layers}}{{slice . 0 19}}{{end}}',
    '{{.Config.WorkingDir}}|{{.Config.User}}|{{.Author}}|{{.Parent}}', '{{(index .Config.Cmd 1) | printf "%5s"}}',
]
IMAGES += [
    "{{json .}}", "table {{json .}}", r"{{.Repository}}\t{{.Tag}}",
    "table {{.Repository}}\t{{.Tag}}\t", "table {{.Tag}}\n{{.Repository}}", "table {{upper .Repository}}|{{.Tag}}",
]
PS += [
    "{{json .}}", '{{.Label "b" | printf "%q"}}', '{{if .Label "k1"}}has k1{{end}}',
    'table {{.Names}}\t{{.Size}}\t{{.Label "k2"}}', "{{.Label 1}}", "{{.Names 1}}", "{{with .Labels}}{{len .}}{{end}}",
]
HISTORY += ["table {{.Size}}", "{{.Comment | title}}"]


def docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def client_version() -> str:
    """Templates are rendered by the docker *client*, whose types differ by version."""
    return docker("version", "--format", "{{.Client.Version}}").stdout.strip()


def make_docker_objects(busybox_tar: str) -> None:
    docker("rm", "-f", CONTAINER)
    docker("rmi", "-f", IMAGE)
    cmd = ["import"] + [a for c in IMPORT_CHANGES for a in ("-c", c)] + ["-m", "imported for templates",
                                                                        busybox_tar, IMAGE]
    subprocess.run(["docker", *cmd], check=True, capture_output=True)
    create = ["create", "--name", CONTAINER] + [a for lb in CONTAINER_LABELS for a in ("-l", lb)] + [IMAGE]
    subprocess.run(["docker", *create], check=True, capture_output=True)


def record() -> dict:
    """Every template through docker, with the objects docker formatted."""
    def run(kind: str, fmt: str):
        if kind == "inspect-image":
            p = docker("inspect", "-f", fmt, IMAGE)
        elif kind == "inspect-container":
            p = docker("inspect", "-f", fmt, CONTAINER)
        elif kind == "images":
            p = docker("images", "--format", fmt, IMAGE.split(":")[0])
        elif kind == "ps":
            p = docker("ps", "-a", "--filter", f"name=^{CONTAINER}$", "--format", fmt)
        else:
            p = docker("history", "--format", fmt, IMAGE)
        return {"kind": kind, "format": fmt, "stdout": p.stdout, "stderr": p.stderr, "rc": p.returncode}

    objects = {
        "inspect-image": json.loads(docker("inspect", "--type", "image", IMAGE).stdout)[0],
        "inspect-container": json.loads(docker("inspect", "--type", "container", CONTAINER).stdout)[0],
        "images": json.loads(docker("images", "--format", "{{json .}}", IMAGE.split(":")[0]).stdout),
        "ps": json.loads(docker("ps", "-a", "--filter", f"name=^{CONTAINER}$", "--format", "{{json .}}").stdout),
        "history": json.loads(docker("history", "--format", "{{json .}}", IMAGE).stdout.splitlines()[0]),
    }
    cases = []
    for kind, fmts in (("inspect-image", INSPECT_IMAGE), ("inspect-container", INSPECT_CONTAINER),
                       ("images", IMAGES), ("ps", PS), ("history", HISTORY)):
        cases += [run(kind, f) for f in fmts]
    return {"client": client_version(), "objects": objects,
            "container_labels": objects["inspect-container"]["Config"]["Labels"], "cases": cases}


if __name__ == "__main__":
    make_docker_objects(sys.argv[1])
    DATA.write_text(json.dumps(record(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {DATA}")
