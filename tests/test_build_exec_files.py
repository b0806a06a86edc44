"""`lamina build`: COPY/ADD rules, RUN heredocs and mounts, and the bad-input list
(each error names Dockerfile:LINE, nothing runs, the store stays sound)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from conftest import requires_root
from test_build_exec import build, ctx, lamina, run

pytestmark = requires_root


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar):
    r = tmp_path_factory.mktemp("build-files-store") / "store"
    lamina(r, "import", busybox_tar, "base:latest")
    return r


def listing(root, image, path) -> list[str]:
    script = f"cd {path} && find . | sort | while read f; do echo \"$f $(stat -c '%u:%g %a %F' \"$f\")\"; done"
    return run(root, image, "sh", "-c", script).splitlines()


# --------------------------------------------------------------------- COPY rules


def test_copy_destination_rules(root, tmp_path):
    files = {"f.txt": "f\n", "dir/a": "a\n", "dir/sub/b": "b\n", "g1.md": "1", "g2.md": "2"}
    df = ("FROM base\nWORKDIR /w\nCOPY f.txt rel\nCOPY f.txt /abs/renamed\nCOPY f.txt /into/\n"
          "COPY dir /dircontent\nCOPY dir/ /dirslash/\nCOPY g*.md /globs/\nCOPY f.txt dir/a /multi/\n"
          "RUN mkdir /existing\nCOPY f.txt /existing\nCOPY --link f.txt /linked\n")
    build(root, ctx(tmp_path, df, files), "-t", "copy:rules")
    out = run(root, "copy:rules", "sh", "-c",
              "cat /w/rel /abs/renamed /into/f.txt /dircontent/a /dircontent/sub/b /dirslash/sub/b "
              "/globs/g1.md /globs/g2.md /multi/f.txt /multi/a /existing/f.txt /linked")
    assert out == "f\nf\nf\na\nb\nb\n12f\na\nf\nf\n"
    p = build(root, ctx(tmp_path / "m", "FROM base\nCOPY f.txt dir/a /nodir\n", files), check=False)
    assert p.returncode == 1 and "Dockerfile:2" in p.stderr.decode() and "must be a directory" in p.stderr.decode()


def test_copy_owner_and_mode(root, tmp_path):
    files = {"x.sh": "#!/bin/sh\n", "d/f": "f"}
    os.makedirs(tmp_path / "ctx", exist_ok=True)
    df = ("FROM base\nCOPY x.sh d /plain/\nCOPY --chown=app x.sh /byname\nCOPY --chown=1000:50 d /byid/\n"
          "COPY --chown=app:staff x.sh /both\nCOPY --chmod=751 x.sh /octal\nCOPY --chmod=u=rwX,go=rX d /sym/\n")
    d = ctx(tmp_path, df, files)
    os.chmod(d / "x.sh", 0o700)
    os.chmod(d / "d" / "f", 0o600)
    build(root, d, "-t", "copy:own")
    out = run(root, "copy:own", "stat", "-c", "%n %u:%g %a", "/plain/x.sh", "/plain/f", "/byname", "/byid/f",
              "/both", "/octal", "/sym/f").splitlines()
    assert out == ["/plain/x.sh 0:0 700", "/plain/f 0:0 600", "/byname 1000:1000 700", "/byid/f 1000:50 600",
                   "/both 1000:50 700", "/octal 0:0 751", "/sym/f 0:0 644"]
    p = build(root, ctx(tmp_path / "u", "FROM base\nCOPY --chown=nosuchuser x.sh /x\n", files), check=False)
    assert p.returncode != 0 and "Dockerfile:2" in p.stderr.decode()


def test_symlinks_are_copied_as_links(root, tmp_path):
    d = ctx(tmp_path, "FROM base\nCOPY tree /tree/\nCOPY outside /outside\nCOPY inside /inside\n",
            {"tree/real": "r\n", "target": "t\n"})
    os.symlink("real", d / "tree" / "rel")
    os.symlink("/etc/shadow", d / "tree" / "abs")
    os.symlink("/etc/shadow", d / "outside")  # never read: copied as the link itself
    os.symlink("target", d / "inside")        # a top-level link inside the context: its content
    build(root, d, "-t", "copy:links")
    out = run(root, "copy:links", "sh", "-c",
              "readlink /tree/rel; readlink /tree/abs; readlink /outside; cat /tree/rel /inside; "
              "test -L /inside || echo not-a-link")
    assert out == "real\n/etc/shadow\n/etc/shadow\nr\nt\nnot-a-link\n"


def test_copy_through_image_symlinks_stays_in_rootfs(root, tmp_path):
    """An image whose /lib is an absolute link: COPY into it lands in the rootfs's target."""
    build(root, ctx(tmp_path / "b", "FROM base\nRUN mkdir -p /usr/lib && ln -s /usr/lib /lib\n"), "-t", "copy:abslink")
    victim = tmp_path / "victim"
    build(root, ctx(tmp_path / "c", "FROM copy:abslink\nCOPY lib /lib/\nCOPY f /lib/f2\n",
                    {"lib/f": "in-root\n", "f": "x"}), "-t", "copy:abslink2")
    assert run(root, "copy:abslink2", "cat", "/usr/lib/f", "/usr/lib/f2") == "in-root\nx"
    assert not os.path.exists("/usr/lib/f2") or open("/usr/lib/f2").read() != "x"
    assert not victim.exists()


def test_copy_heredoc(root, tmp_path):
    df = 'FROM base\nENV WHO=world\nCOPY <<EOF /hello\nhello $WHO\nEOF\nCOPY <<"EOT" /raw\nraw $WHO\nEOT\n'
    build(root, ctx(tmp_path, df), "-t", "copy:heredoc")
    assert run(root, "copy:heredoc", "cat", "/hello", "/raw") == "hello world\nraw $WHO\n"
    assert run(root, "copy:heredoc", "stat", "-c", "%a", "/hello") == "644\n"


# --------------------------------------------------------------------- ADD


def _tar(members: dict, mode="w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            if isinstance(data, tuple):  # (type, linkname)
                ti.type, ti.linkname = data
            else:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if not isinstance(data, tuple) else None)
    return buf.getvalue()


def test_add_extracts_archives_by_content(root, tmp_path):
    files = {"plain.tar": _tar({"p/one": b"1"}), "g.tgz": _tar({"g/two": b"2"}, "w:gz"),
             "b.bin": _tar({"b/three": b"3"}, "w:bz2"), "x.tar.xz": _tar({"x/four": b"4"}, "w:xz"),
             "notar.gz": gzip.compress(b"just gzip")}
    df = "FROM base\nADD plain.tar g.tgz b.bin x.tar.xz /ex/\nADD notar.gz /raw/\n"
    build(root, ctx(tmp_path, df, files), "-t", "add:arch")
    assert run(root, "add:arch", "cat", "/ex/p/one", "/ex/g/two", "/ex/b/three", "/ex/x/four") == "1234"
    assert run(root, "add:arch", "ls", "/raw") == "notar.gz\n"


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_add_malicious_tar_is_confined(root, tmp_path, monkeypatch, driver):
    monkeypatch.setenv("LAMINA_STORAGE_DRIVER", driver)  # the escape suite runs on both storage drivers
    evil = _tar({"../../escape": b"bad", "link": (tarfile.SYMTYPE, "/etc"), "link/passwd": b"owned",
                 "/abs": b"abs"})
    build(root, ctx(tmp_path, "FROM base\nADD evil.tar /dst/\n", {"evil.tar": evil}), "-t", "add:evil")
    out = run(root, "add:evil", "sh", "-c", "cat /dst/escape /dst/abs; grep -c root /etc/passwd; ls /escape 2>&1; true")
    assert out.startswith("badabs1\n")
    assert not Path("/escape").exists() and "owned" not in Path("/etc/passwd").read_text()
    assert lamina(root, "system", "check").returncode == 0


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"downloaded\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_add_url_with_checksum(root, tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/files/data.txt"
        good = "sha256:" + hashlib.sha256(b"downloaded\n").hexdigest()
        build(root, ctx(tmp_path, f"FROM base\nADD --checksum={good} {url} /dl/\n"), "-t", "add:url")
        assert run(root, "add:url", "stat", "-c", "%n %a %Y", "/dl/data.txt") == "/dl/data.txt 600 1445412480\n"
        bad = "sha256:" + "0" * 64
        p = build(root, ctx(tmp_path / "b", f"FROM base\nADD --checksum={bad} {url} /dl/\n"), check=False)
        assert p.returncode != 0 and "Dockerfile:2" in p.stderr.decode() and "mismatch" in p.stderr.decode()
    finally:
        server.shutdown()


# --------------------------------------------------------------------- RUN heredocs and mounts


def test_run_heredocs(root, tmp_path):
    df = ("FROM base\nRUN <<EOF\necho one > /h1\necho two >> /h1\nEOF\n"
          "RUN <<EOF\n#!/bin/sh\necho \"script $0\" > /h2\nEOF\n"
          "RUN cat <<A > /h3 && cat <<B >> /h3\nfirst\nA\nsecond\nB\n")
    build(root, ctx(tmp_path, df), "-t", "run:heredoc")
    assert run(root, "run:heredoc", "cat", "/h1", "/h2", "/h3") == "one\ntwo\nscript /dev/pipes/EOF\nfirst\nsecond\n"


def test_run_mounts(root, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    df = ("FROM base AS other\nRUN echo from-stage > /made\n"
          "FROM base\nRUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /count\n"
          "RUN --mount=type=bind,source=data,target=/mnt cat /mnt/f > /bound\n"
          "RUN --mount=type=bind,from=other,source=/made,target=/m cp /m /fromstage\n"
          "RUN --mount=type=tmpfs,target=/scratch touch /scratch/t && ls /scratch > /tmpfs\n"
          "RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null && test ! -s /dev/null\n"
          "RUN --mount=type=secret,id=token,env=TOKEN test \"${#TOKEN}\" -eq 6 && test \"${TOKEN#s3c}\" = ret\n"
          "RUN --network=none cat /proc/net/dev | grep -c : > /ifaces\n")
    d = ctx(tmp_path, df, {"data/f": "bound\n"})
    build(root, d, "--secret", f"id=token,src={secret}", "-t", "run:mounts")
    assert run(root, "run:mounts", "cat", "/count", "/bound", "/fromstage", "/tmpfs", "/ifaces") == \
        "1\nbound\nfrom-stage\nt\n1\n"
    # mount points are not left in the image
    assert run(root, "run:mounts", "sh", "-c", "ls -d /cache /scratch /m /mnt /run/secrets 2>&1; true").count(
        "No such file") == 5
    build(root, d, "--no-cache", "--secret", f"id=token,src={secret}", "-t", "run:mounts2")
    assert run(root, "run:mounts2", "cat", "/count") == "2\n"  # the cache mount persisted
    hist = lamina(root, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "run:mounts").stdout
    assert b"s3cret" not in hist and b"s3cret" not in lamina(root, "inspect", "run:mounts").stdout


# --------------------------------------------------------------------- bad input


BAD = [
    ("unknown", "FROM base\nFOOBAR x\n", {}, "Dockerfile:2", "unknown instruction"),
    ("before-from", "ENV A=1\nFROM base\n", {}, "Dockerfile:1", ""),
    ("heredoc", "FROM base\nRUN <<EOF\necho hi\n", {}, "Dockerfile:2", "unterminated heredoc"),
    ("escape-eof", "FROM base\nRUN \\", {}, "Dockerfile:2", "RUN"),
    ("from-stage", "FROM base\nRUN touch /ran\nCOPY --from=127.0.0.1:9/nosuch /x /y\n", {}, "Dockerfile:3",
     "nosuch"),
    ("cycle", "FROM base AS a\nCOPY --from=b /x /y\nFROM base AS b\nCOPY --from=a /x /y\n", {}, "Dockerfile:",
     "circular dependency"),
    ("outside", "FROM base\nRUN touch /ran\nCOPY ../x /y\n", {}, "Dockerfile:3", "outside the build context"),
    # ("glob": a wildcard matching nothing builds with BuildKit; test_build_copy_semantics checks it)
    ("missing", "FROM base\nCOPY nothere /y\n", {}, "Dockerfile:2", "not found"),
    ("arg-from", "FROM $UNDEFINED\nRUN touch /x\n", {}, "Dockerfile:1", "UNDEFINED"),
    ("bad-flag", "FROM base\nCOPY --nope=1 a b\n", {}, "Dockerfile:2", "unknown flag"),
    ("empty", "# only a comment\n", {}, "", ""),
]


@pytest.mark.parametrize("name,df,files,where,what", BAD, ids=[b[0] for b in BAD])
def test_bad_input(root, tmp_path, name, df, files, where, what):
    before = lamina(root, "images", "-a", "-q").stdout
    p = build(root, ctx(tmp_path, df, files), check=False)
    err = p.stderr.decode()
    assert p.returncode != 0, p.stdout.decode()
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    assert where in err and what in err, err
    assert "Running in" not in p.stdout.decode()  # it failed before any RUN
    assert lamina(root, "images", "-a", "-q").stdout == before
    assert lamina(root, "ps", "-a", "-q").stdout.strip() == b""
    assert lamina(root, "system", "check").returncode == 0


def test_trailing_escape_at_eof_is_accepted_like_docker(root, tmp_path):
    # BuildKit and the classic builder both accept a continuation at EOF.
    build(root, ctx(tmp_path, "FROM base\nRUN echo ok > /ok \\"), "-t", "esc:eof")
    assert run(root, "esc:eof", "cat", "/ok") == "ok\n"


def test_copy_layer_tar_matches_the_unpacked_layer(root, tmp_path):
    """A COPY into a new directory writes its layer tar while copying; it must describe
    exactly the unpacked layer (what write_layer_from_upper would archive)."""
    import json
    import sqlite3

    from lamina.archive.layertar import write_layer_from_upper
    from lamina.digest import chain_ids, Digest

    files = {"tree/a": "a\n", "tree/sub/b": "b" * 70000, "tree/sub/deeper/c": "", "one": "1"}
    d = ctx(tmp_path, "FROM base\nCOPY --chown=app:staff tree /fresh/dir/\nCOPY one tree /fresh2/\n", files)
    os.symlink("sub/b", d / "tree" / "link")
    os.chmod(d / "tree" / "a", 0o751)
    os.mkfifo(d / "tree" / "fifo")
    build(root, d, "-t", "tee:1")
    cfg = json.loads(lamina(root, "inspect", "--type", "image", "tee:1").stdout)[0]
    diff_ids = [Digest(x) for x in cfg["RootFS"]["Layers"]]
    db = sqlite3.connect(os.path.join(root, "lamina.db"))
    for n in (len(diff_ids) - 2, len(diff_ids) - 1):
        chain = str(chain_ids(diff_ids[: n + 1])[-1])
        layer_dir = db.execute("SELECT dir FROM layers WHERE chain_id=?", (chain,)).fetchone()[0]
        blob = os.path.join(root, "blobs", "sha256", diff_ids[n].hex)
        rewritten = io.BytesIO()
        write_layer_from_upper(os.path.join(root, "layers", layer_dir, "diff"), rewritten)

        def members(data: bytes) -> set:
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                return {(m.name, m.type, m.mode, m.uid, m.gid, m.size, m.mtime, m.linkname,
                         hashlib.sha256(tf.extractfile(m).read()).hexdigest() if m.isreg() else "")
                        for m in tf}

        assert members(Path(blob).read_bytes()) == members(rewritten.getvalue())
    assert run(root, "tee:1", "stat", "-c", "%n %u:%g %a", "/fresh/dir/a", "/fresh2/one") == \
        "/fresh/dir/a 1000:50 751\n/fresh2/one 0:0 644\n"


def test_copy_exclude_and_add_unpack_false(root, tmp_path):
    files = {"src/keep.py": "k", "src/skip.md": "s", "src/sub/x.md": "x", "src/sub/y.py": "y",
             "a.tar": _tar({"inner": b"i"})}
    df = ("FROM base\nCOPY --exclude=*.md --exclude=sub/*.md src /dst/\nADD --unpack=false a.tar /packed/\n"
          "COPY --parents src/keep.py /p/\n")
    p = build(root, ctx(tmp_path, df, files), check=False)
    assert p.returncode == 1 and "Dockerfile:4" in p.stderr.decode() and "--parents" in p.stderr.decode()
    build(root, ctx(tmp_path / "ok", df.replace("COPY --parents src/keep.py /p/\n", ""), files), "-t", "excl:1")
    assert sorted(run(root, "excl:1", "find", "/dst", "/packed", "-type", "f").split()) == \
        ["/dst/keep.py", "/dst/sub/y.py", "/packed/a.tar"]


def test_hostile_workdir_and_mount_sources(root, tmp_path):
    """Catalogue 4.C #31/#32: a WORKDIR into /proc is refused at RUN; a bind source that
    links to / inside a stage stays in that stage; a cache id cannot name a path."""
    p = build(root, ctx(tmp_path / "w", "FROM base\nWORKDIR /proc/self/fd/7\nRUN ls ../../..\n"), check=False)
    assert p.returncode != 0 and "proc" in p.stderr.decode() and "Traceback" not in p.stderr.decode()
    df = ("FROM base AS evil\nRUN ln -s / /link\n"
          "FROM base\nRUN --mount=type=bind,from=evil,source=/link,target=/m ls /m > /listing\n"
          "RUN --mount=type=cache,id=../../../../x,target=/c touch /c/made\n")
    build(root, ctx(tmp_path / "m", df), "-t", "hostile:1")
    listing = run(root, "hostile:1", "cat", "/listing").split()
    assert "link" in listing and "bin" in listing  # the stage's own root, not the host's
    assert not Path("/x").exists() and not (Path(root).parent / "x").exists()
    cache = Path(root) / "build-cache"
    assert all(len(n.split(".")[0]) == 64 for n in os.listdir(cache))
