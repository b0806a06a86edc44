"""Credentials and auth challenges: docker's config.json, helpers, Basic and token
registries, login/logout, and credentials never leaving the registry host."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import sys

import pytest

from registry_fixtures import basic_registry, token_registry, docker_config  # noqa: F401 - pytest fixtures
from registry_fixtures import PASSWORD, USER, Recorder, TamperProxy, login_file, make_image, tar_bytes

from lamina import oci
from lamina.cli.main import main
from lamina.digest import Digest
from lamina.errors import LaminaError, RegistryError
from lamina.reference import parse
from lamina.remote.auth import Credentials, DockerConfig
from lamina.remote.challenge import parse_challenges
from lamina.remote.hosts import endpoint, is_insecure, normalize_server
from lamina.remote.registry import open_repository
from lamina.system import System
from lamina.transfer.progress import QuietProgress
from lamina.transfer.push import Pusher


# -- pure parts ---------------------------------------------------------------------------
def test_parse_challenges():
    ch = parse_challenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                          'scope="repository:library/alpine:pull"')
    assert ch[0].scheme == "bearer"
    assert ch[0].params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                            "scope": "repository:library/alpine:pull"}
    assert ch[0].scopes == ("repository:library/alpine:pull",)
    two = parse_challenges('Basic realm="a b", Bearer realm="x",scope="s1 s2"')
    assert [c.scheme for c in two] == ["basic", "bearer"]
    assert two[0].params["realm"] == "a b" and two[1].scopes == ("s1", "s2")
    assert parse_challenges('Basic realm="with \\"quote\\""')[0].params["realm"] == 'with "quote"'
    assert parse_challenges("") == []


def test_scopes_are_normalized():
    from lamina.remote.challenge import normalize_scopes

    assert normalize_scopes(["repository:a/b:push,pull", "repository:a/b:pull", "repository:c:pull"]) == {
        "repository:a/b:pull,push", "repository:c:pull"}
    assert normalize_scopes(["registry:catalog:*"]) == {"registry:catalog:*"}


def test_hosts(monkeypatch):
    monkeypatch.delenv("LAMINA_INSECURE_REGISTRIES", raising=False)
    assert endpoint("docker.io").base == "https://registry-1.docker.io"
    assert endpoint("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert endpoint("localhost:5000").scheme == "http"
    assert endpoint("[::1]:5000").scheme == "http"
    assert endpoint("127.1.2.3").scheme == "http"
    assert endpoint("registry.example.com:5000").scheme == "https"
    monkeypatch.setenv("LAMINA_INSECURE_REGISTRIES", "registry.example.com:5000, 10.0.0.0/8")
    assert endpoint("registry.example.com:5000").scheme == "http"
    assert is_insecure("10.1.2.3:5000") and not is_insecure("11.1.2.3:5000")
    assert normalize_server("https://index.docker.io/v1/") == "docker.io"
    assert normalize_server("http://127.0.0.1:5000/") == "127.0.0.1:5000"


def test_docker_config_file(tmp_path):
    cfg = DockerConfig(str(tmp_path))
    assert cfg.get("docker.io") is None
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw:with:colons").decode()},
        "http://127.0.0.1:5000/": {"auth": base64.b64encode(b"u:p").decode()},
        "tok.example.com": {"identitytoken": "refresh-me"},
    }, "psFormat": "keep me"}))
    assert cfg.get("docker.io") == Credentials("hub", "pw:with:colons")
    assert cfg.get("127.0.0.1:5000") == Credentials("u", "p")
    assert cfg.get("tok.example.com").identity_token == "refresh-me"
    assert "pw" not in repr(cfg.get("docker.io"))
    cfg.store("127.0.0.1:5000", Credentials("new", "secret"))
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["psFormat"] == "keep me"  # other settings survive
    assert list(k for k in data["auths"] if "5000" in k) == ["127.0.0.1:5000"]
    assert stat.S_IMODE(os.stat(tmp_path / "config.json").st_mode) == 0o600
    assert cfg.get("127.0.0.1:5000") == Credentials("new", "secret")
    assert cfg.erase("127.0.0.1:5000") and not cfg.erase("127.0.0.1:5000")
    assert cfg.get("127.0.0.1:5000") is None


def test_credential_helper(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bindir / "docker-credential-fake"
    helper.write_text(f"""#!{sys.executable}
import json, sys
path = {str(store)!r}
try:
    data = json.load(open(path))
except FileNotFoundError:
    data = {{}}
action, stdin = sys.argv[1], sys.stdin.read()
if action == "get":
    if stdin.strip() not in data:
        print("credentials not found in native keychain"); sys.exit(1)
    u, s = data[stdin.strip()]
    print(json.dumps({{"ServerURL": stdin.strip(), "Username": u, "Secret": s}}))
elif action == "store":
    d = json.loads(stdin); data[d["ServerURL"]] = [d["Username"], d["Secret"]]; json.dump(data, open(path, "w"))
elif action == "erase":
    data.pop(stdin.strip(), None); json.dump(data, open(path, "w"))
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "fake",
                                                       "credHelpers": {"other.example.com": "missing"}}))
    cfg = DockerConfig(str(tmp_path))
    assert cfg.get("127.0.0.1:5000") is None
    assert cfg.store("127.0.0.1:5000", Credentials("helper-user", "helper-secret")) == "fake"
    assert json.loads(store.read_text()) == {"127.0.0.1:5000": ["helper-user", "helper-secret"]}
    assert "auths" not in json.loads((tmp_path / "config.json").read_text())  # secret not in the file
    assert cfg.get("127.0.0.1:5000") == Credentials("helper-user", "helper-secret")
    with pytest.raises(LaminaError, match="docker-credential-missing"):
        cfg.get("other.example.com")
    assert cfg.erase("127.0.0.1:5000")
    assert cfg.get("127.0.0.1:5000") is None


# -- against registries --------------------------------------------------------------------
def lamina(*args, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(list(args))


def test_basic_auth_login_push_logout(basic_registry, docker_config, tmp_path, capsys, monkeypatch):
    host = basic_registry.host
    system = System(str(tmp_path / "root"))
    make_image(system, [tar_bytes({"f": b"basic"})], f"{host}/private/img:1")
    with pytest.raises(RegistryError, match=rf"^Error response from registry {host}: .*unauthorized: "
                                            r"authentication required \(not logged in\)$"):
        Pusher(system, QuietProgress()).push(parse(f"{host}/private/img:1"))

    code = lamina("login", "-u", USER, "--password-stdin", host, stdin="wrong\n", monkeypatch=monkeypatch)
    err = capsys.readouterr().err
    assert code == 1 and "unauthorized" in err and len(err.strip().splitlines()) == 1
    assert not (docker_config / "config.json").exists()

    code = lamina("login", "-u", USER, "--password-stdin", host, stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    captured = capsys.readouterr()
    assert code == 0 and captured.out.strip() == "Login Succeeded"
    assert "stored unencrypted" in captured.err
    auths = json.loads((docker_config / "config.json").read_text())["auths"]
    assert base64.b64decode(auths[host]["auth"]).decode() == f"{USER}:{PASSWORD}"

    Pusher(system, QuietProgress()).push(parse(f"{host}/private/img:1"))

    assert lamina("logout", host) == 0
    assert capsys.readouterr().out.strip() == f"Removing login credentials for {host}"
    assert lamina("logout", host) == 0
    assert capsys.readouterr().out.strip() == f"Not logged in to {host}"
    system.close()


def test_login_usage_errors(docker_config, capsys, monkeypatch):
    assert lamina("login", "--password-stdin", "127.0.0.1:1", stdin="x", monkeypatch=monkeypatch) == 1
    assert "Must provide --username with --password-stdin" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert lamina("login", "127.0.0.1:1") == 1
    assert "non TTY" in capsys.readouterr().err


def test_token_auth(token_registry, docker_config, tmp_path, capsys, monkeypatch):
    host = token_registry.host
    tokens = token_registry.tokens
    system = System(str(tmp_path / "root"))
    make_image(system, [tar_bytes({"t": b"token"})], f"{host}/team/app:1")
    with pytest.raises(RegistryError, match="unauthorized|denied"):
        Pusher(system, QuietProgress()).push(parse(f"{host}/team/app:1"))
    assert all(not r["authorization"] for r in tokens.requests), tokens.requests  # anonymous token requests

    login_file(docker_config, host)
    tokens.requests.clear()
    Pusher(system, QuietProgress()).push(parse(f"{host}/team/app:1"))
    assert tokens.requests and all(r["authorization"].startswith("Basic ") for r in tokens.requests)
    assert any("repository:team/app:pull,push" in r["scopes"] for r in tokens.requests)
    # tokens are cached: a handful of token requests for a whole push, not one per request
    assert len(tokens.requests) <= 3

    # a cross-repository mount asks for pull on the source too
    system.images.tag(system.images.resolve(f"{host}/team/app:1").id, parse(f"{host}/team/copy:1"))
    tokens.requests.clear()
    Pusher(system, QuietProgress()).push(parse(f"{host}/team/copy:1"))
    assert any("repository:team/app:pull" in r["scopes"] for r in tokens.requests)

    assert lamina("login", "-u", USER, "--password-stdin", host, stdin=PASSWORD, monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out.strip().endswith("Login Succeeded")
    assert lamina("login", "-u", USER, "--password-stdin", host, stdin="nope", monkeypatch=monkeypatch) == 1
    assert "incorrect username or password" in capsys.readouterr().err
    system.close()


def test_redirect_to_other_host_drops_authorization(basic_registry, docker_config, tmp_path):
    """A blob GET redirected to another host must not carry the registry's credentials."""
    proxy = TamperProxy(basic_registry.host)
    elsewhere = Recorder(reply=lambda path: (200, {}, b"cdn-bytes"))
    try:
        login_file(docker_config, proxy.host)

        def redirect(ex):
            if ex.method == "GET" and "/blobs/" in ex.path:
                ex.respond(307, headers={"Location": f"http://{elsewhere.host}/cdn/blob"})
                return True
            return False

        proxy.fault = redirect
        repo = open_repository(proxy.host, "private/img")
        desc = oci.Descriptor(oci.OCI_LAYER, Digest.of_bytes(b"cdn-bytes"), 9)
        assert not repo.blob_exists(desc.digest)  # learns the Basic challenge
        with repo.open_blob(desc) as reader:
            assert reader.read(100) == b"cdn-bytes"
        blob_gets = [h for m, p, h in proxy.log if m == "GET" and "/blobs/" in p]
        assert blob_gets and all(h.get("Authorization", "").startswith("Basic") for h in blob_gets)
        assert elsewhere.requests and all("Authorization" not in h for _, h in elsewhere.requests)
    finally:
        proxy.stop()
        elsewhere.stop()


def test_foreign_realm_over_http_gets_no_credentials(basic_registry, docker_config, tmp_path):
    """A registry challenge naming a token realm on another host (plain HTTP): the
    token request goes out anonymously; the failure says why."""
    proxy = TamperProxy(basic_registry.host)
    realm = Recorder()
    try:
        login_file(docker_config, proxy.host)

        def foreign_realm(ex):
            if ex.headers.get("Authorization", "").startswith("Basic"):
                return False  # never reached: we must not send Basic to the proxy after a Bearer challenge
            ex.respond(401, b"{}", {"WWW-Authenticate": f'Bearer realm="http://{realm.host}/token",service="x"'})
            return True

        proxy.fault = foreign_realm
        system = System(str(tmp_path / "root"))
        make_image(system, [tar_bytes({"x": b"x"})], f"{proxy.host}/private/leak:1")
        with pytest.raises(RegistryError, match=rf"credentials not sent to token realm {realm.host}"):
            Pusher(system, QuietProgress()).push(parse(f"{proxy.host}/private/leak:1"))
        assert realm.requests and all("Authorization" not in h for _, h in realm.requests)
        with pytest.raises(RegistryError, match="credentials not sent to token realm|refusing to send credentials"):
            from lamina.remote.login import verify_login

            verify_login(proxy.host, Credentials(USER, PASSWORD))
        assert all("Authorization" not in h for _, h in realm.requests)
        system.close()
    finally:
        proxy.stop()
        realm.stop()
