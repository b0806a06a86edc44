"""The Engine API service's transport: headers, routing, errors, limits, slow and hostile
clients, socket ownership, activation and the idle timeout — over real sockets
against `lamina system service` in a subprocess (no client library in between)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from api_fixtures import LAMINA, Service, UnixHTTPConnection, lamina
from conftest import requires_root

pytestmark = requires_root


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    base = tmp_path_factory.mktemp("api-server")
    os.chmod(base, 0o755)
    svc = Service(base / "root", env={"LAMINA_API_HEADER_TIMEOUT": "2"})
    yield svc
    svc.stop()


def test_ping_get_and_head_carry_dockers_headers(service):
    for method in ("GET", "HEAD"):
        status, headers, body = service.request(method, "/_ping")
        assert status == 200
        assert body == (b"OK" if method == "GET" else b"")
        assert headers["API-Version"] == "1.41"
        assert headers["Builder-Version"] == "1"
        assert headers["Docker-Experimental"] == "false"
        assert headers["OSType"] == "linux"
        assert headers["Server"].startswith("Lamina/")


def test_versioned_and_unversioned_paths(service):
    status, plain = service.json("GET", "/version")
    assert status == 200 and plain["ApiVersion"] == "1.41" and plain["MinAPIVersion"] == "1.12"
    assert plain["Components"][0]["Name"] == "Engine"
    status, versioned = service.json("GET", "/v1.24/version")
    assert status == 200 and versioned["ApiVersion"] == "1.41"
    status, body = service.json("GET", "/v1.99/version")
    assert status == 400
    assert body == {"message": "client version 1.99 is too new. Maximum supported API version is 1.41"}


def test_unknown_endpoint_is_dockers_page_not_found(service):
    for method, path in (("GET", "/nope"), ("GET", "/v1.41/nope/json"), ("PATCH", "/images/json")):
        status, headers, body = service.request(method, path)
        assert status == 404
        assert json.loads(body) == {"message": "page not found"}
        assert headers["Content-Type"] == "application/json"


def test_engine_errors_are_json_with_dockers_status(service):
    assert service.json("GET", "/images/nosuch/json") == (
        404, {"message": "no such image: nosuch: No such image: nosuch:latest"})  # dockerd 20.10, verbatim
    assert service.json("GET", "/containers/nosuch/json") == (404, {"message": "No such container: nosuch"})
    assert service.json("DELETE", "/images/nosuch") == (404, {"message": "No such image: nosuch:latest"})
    status, body = service.json("GET", "/images/Bad..Name/json")
    assert status == 400 and body["message"]
    status, body = service.json("GET", '/images/json?filters={"bogus":["x"]}')
    assert (status, body) == (400, {"message": "Invalid filter 'bogus'"})  # dockerd 20.10's words
    assert service.json("GET", "/images/search?term=x")[0] == 501


def test_filters_in_list_and_map_form(service):
    for form in ('{"dangling":["true"]}', '{"dangling":{"true":true}}'):
        status, body = service.json("GET", "/images/json?filters=" + form)
        assert (status, body) == (200, [])
    status, body = service.json("GET", "/images/json?filters=[1]")
    assert status == 400


def test_malformed_json_body_is_a_400(service):
    status, body = service.json("POST", "/commit?container=x", body=b'{"Cmd": [')
    assert status == 400 and body["message"].startswith("invalid JSON")
    status, body = service.json("POST", "/images/json?filters=%7Bbad")
    assert status == 404  # POST to a GET route: not found, as dockerd's router


def test_huge_body_is_refused_without_reading_it(service):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(service.socket)
        s.sendall(b"POST /commit?container=x HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1073741824\r\n\r\n{")
        start = time.time()
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        assert time.time() - start < 5
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"request body too large" in body


def test_chunked_request_body_is_decoded(service):
    conn = UnixHTTPConnection(service.socket)
    conn.putrequest("POST", "/commit?container=nosuch")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    for piece in (b"nu", b"ll"):
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())) == (404, {"message": "No such container: nosuch"})
    conn.close()


def test_slow_loris_is_cut_and_blocks_nobody(service):
    """A client trickling its headers is disconnected at the header deadline (2 s here),
    and meanwhile other clients are served at once."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(service.socket)
    s.sendall(b"GET /_ping HTTP/1.1\r\n")
    start = time.time()
    closed_at = None
    try:
        for i in range(40):
            t0 = time.time()
            assert service.request("GET", "/_ping")[0] == 200
            assert time.time() - t0 < 1
            try:
                s.sendall(b"X")
                s.settimeout(0.2)
                if s.recv(1) == b"":
                    closed_at = time.time()
                    break
            except socket.timeout:
                continue
            except OSError:
                closed_at = time.time()
                break
    finally:
        s.close()
    assert closed_at is not None and closed_at - start < 5


def test_keep_alive_serves_several_requests_on_one_connection(service):
    conn = UnixHTTPConnection(service.socket)
    for _ in range(3):
        conn.request("GET", "/_ping")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"OK"
    conn.close()


def _settled_threads(service, at_most: int = 2, wait: float = 5) -> int:
    deadline = time.time() + wait
    while service.threads() > at_most and time.time() < deadline:
        time.sleep(0.1)
    return service.threads()


def test_client_leaving_a_live_event_stream_frees_its_thread(service):
    before = _settled_threads(service)
    assert before == 2  # the accept loop and the monitor
    conns = []
    for _ in range(5):
        conn = UnixHTTPConnection(service.socket)
        conn.request("GET", "/events")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.headers["Transfer-Encoding"] == "chunked"
        conns.append(conn)
    assert service.threads() >= before + 5
    for conn in conns:
        conn.close()
    assert _settled_threads(service) == before


def test_non_root_connection_is_refused(service):
    """A process that dropped to nobody cannot connect (socket 0660 root:root)."""
    assert oct(os.stat(service.socket).st_mode & 0o777) == "0o660"
    assert (os.stat(service.socket).st_uid, os.stat(service.socket).st_gid) == (0, 0)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(service.socket)
            code = 1
        except PermissionError:
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_group_granted_socket_checks_the_peer(tmp_path):
    """--group: the socket is root:GROUP 0660; a member connects, nobody else."""
    gid = 4242
    svc = Service(tmp_path / "root", args=("--group", str(gid)))
    try:
        assert os.stat(svc.socket).st_gid == gid
        for groups, expected in (([gid], 200), ([], None)):
            pid = os.fork()
            if pid == 0:
                code = 3
                try:
                    os.setgroups(groups)
                    os.setgid(65534)
                    os.setuid(65534)
                    status = svc.request("GET", "/_ping")[0]
                    code = 0 if status == expected else 1
                except PermissionError:
                    code = 0 if expected is None else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, groups
    finally:
        svc.stop()


def test_live_socket_refused_and_stale_socket_replaced(service, tmp_path):
    second = subprocess.run([*LAMINA, "--root", str(tmp_path / "r2"), "system", "service", "--socket",
                             service.socket, "--timeout", "0"], capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert f"{service.socket} is in use by a running service" in second.stderr
    os.chmod(tmp_path, 0o755)
    stale_dir = tmp_path / "stale"
    stale_dir.mkdir()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(stale_dir / "docker.sock"))
    dead.close()  # the file stays, nobody listens: a dead service's
    svc = Service(tmp_path / "r3", stale_dir)
    try:
        assert svc.request("GET", "/_ping")[0] == 200
    finally:
        svc.stop()


def test_refuses_a_directory_others_can_write(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    out = lamina(tmp_path / "root", "system", "service", "--socket", str(open_dir / "d.sock"), timeout=30)
    assert out.returncode != 0
    assert "must belong to root and be writable only by root" in out.stderr
    assert not (open_dir / "d.sock").exists()


def test_idle_timeout_exits_and_removes_the_socket(tmp_path):
    svc = Service(tmp_path / "root", timeout=1)
    assert svc.request("GET", "/_ping")[0] == 200
    svc.proc.wait(60)
    assert svc.proc.returncode == 0
    assert not os.path.exists(svc.socket)
    svc.stop()


def test_tcp_listens_on_loopback_by_default(tmp_path):
    from registry_fixtures import free_port

    port = free_port()
    proc = subprocess.Popen([*LAMINA, "--root", str(tmp_path / "root"), "system", "service", "-H", f"tcp://:{port}",
                             "--timeout", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert f"tcp://127.0.0.1:{port}" in line
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/_ping")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_tcp_on_another_address_warns_unauthenticated(tmp_path):
    from registry_fixtures import free_port

    port = free_port("127.0.0.2")
    proc = subprocess.Popen([*LAMINA, "--root", str(tmp_path / "root"), "system", "service", "-H",
                             f"tcp://127.0.0.2:{port}", "--timeout", "0"], stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        assert "Binding to IP address without --tlsverify is insecure" in first
    finally:
        proc.terminate()
        proc.wait(10)


def test_socket_activation_uses_the_passed_fd(tmp_path):
    """systemd's protocol: the listening socket is fd 3, LISTEN_PID/LISTEN_FDS say so."""
    os.chmod(tmp_path, 0o755)
    path = str(tmp_path / "act.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)
    code = ("import os,sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_PID']=str(os.getpid()); "
            "os.environ['LISTEN_FDS']='1'; os.execv(sys.executable, [sys.executable, '-m', 'lamina', '--root', "
            "sys.argv[2], 'system', 'service', '--timeout', '1'])")
    proc = subprocess.Popen([LAMINA[0], "-c", code, str(listener.fileno()), str(tmp_path / "root")],
                            pass_fds=(listener.fileno(),), stderr=subprocess.PIPE, text=True)
    listener.close()
    conn = UnixHTTPConnection(path, 10)
    conn.request("GET", "/_ping")
    assert conn.getresponse().status == 200
    conn.close()
    assert proc.wait(15) == 0  # idle for a second: exits, systemd keeps the socket
    assert os.path.exists(path)


# ------------------------------------------------------- the connection machinery, in process


@pytest.fixture
def inprocess(tmp_path):
    """A Service in this process, with test routes: what attach/exec will build on."""
    import threading

    from lamina.api import routes
    from lamina.api.listen import open_listener
    from lamina.api.service import Service as ApiService

    def echo_framed(request, id):  # noqa: A002 - as dockerd's {id}
        conn = request.hijack()
        while True:
            data = conn.reader.read1(4096)
            if not data:
                break
            conn.sock.sendall(bytes([1, 0, 0, 0]) + len(data).to_bytes(4, "big") + data)
        conn.sock.shutdown(socket.SHUT_WR)

    def slow_stream(request):
        stream = request.stream_json()
        for i in range(1000):
            stream.write({"status": f"tick {i}"})
            time.sleep(0.01)
        stream.close()

    saved = list(routes._ROUTES)
    routes.route("POST", "/test/{id}/attach", echo_framed)
    routes.route("GET", "/test/slow", slow_stream)
    sock_dir = tmp_path / "s"
    sock_dir.mkdir(mode=0o755)
    listener = open_listener(socket_path=str(sock_dir / "d.sock"))
    service = ApiService(listener, root=str(tmp_path / "root"), timeout=0)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    yield service, str(sock_dir / "d.sock")
    service.shutdown()
    thread.join(10)
    routes._ROUTES[:] = saved


def test_hijack_answers_101_then_the_raw_socket_both_ways(inprocess):
    _, path = inprocess
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"POST /v1.41/test/abc/attach?stream=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
                  b"Upgrade: tcp\r\nContent-Length: 0\r\n\r\nbuffered-with-headers")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
        assert b"Content-Type: application/vnd.docker.raw-stream\r\n" in head
        assert b"Upgrade: tcp\r\n" in head and b"Connection: Upgrade\r\n" in head
        s.sendall(b"later")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    payload, frames = b"", data
    while frames:
        assert frames[:4] == b"\x01\x00\x00\x00"
        size = int.from_bytes(frames[4:8], "big")
        payload, frames = payload + frames[8:8 + size], frames[8 + size:]
    assert payload == b"buffered-with-headerslater"


def test_hijack_without_upgrade_header_is_200(inprocess):
    _, path = inprocess
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"POST /test/x/attach HTTP/1.1\r\nHost: d\r\n\r\nhi")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\x01\x00\x00\x00\x00\x00\x00\x02hi")


def test_a_client_dropping_a_stream_ends_its_work(inprocess):
    service, path = inprocess
    conn = UnixHTTPConnection(path, 10)
    conn.request("GET", "/test/slow")
    resp = conn.getresponse()
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert resp.read(len(b'{"status": "tick 0"}')) == b'{"status": "tick 0"}'
    conn.close()
    resp.close()
    deadline = time.time() + 30
    while service._connections and time.time() < deadline:
        time.sleep(0.05)
    assert service._connections == 0  # the writer hit the closed socket and unwound


def test_twenty_clients_at_once(service):
    """20 clients in a loop of ps/images/version/inspect for a few seconds: no error, no stall."""
    import concurrent.futures

    paths = ["/containers/json?all=1", "/images/json", "/version", "/images/nosuch/json", "/_ping", "/info"]

    def loop(i):
        n = 0
        end = time.time() + 4
        while time.time() < end:
            status, _, _ = service.request("GET", paths[(i + n) % len(paths)], timeout=10)
            assert status in (200, 404)
            n += 1
        return n

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        counts = list(pool.map(loop, range(20)))
    assert min(counts) > 5


def test_peer_check_refuses_others_even_when_the_mode_would_let_them_in(tmp_path):
    """A socket made with a looser mode (a systemd unit's SocketMode=0666, a chmod) still
    refuses a non-root peer: SO_PEERCRED is checked per connection."""
    svc = Service(tmp_path / "root")
    try:
        os.chmod(svc.socket, 0o666)
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                status, _, body = svc.request("GET", "/_ping")
                code = 0 if (status, json.loads(body)) == (403, {"message": "permission denied: root only here"}) \
                    else 1
            except Exception:  # noqa: BLE001 - any other outcome fails the test
                code = 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert svc.request("GET", "/_ping")[0] == 200  # root still gets in
    finally:
        svc.stop()


def test_build_refuses_another_os_and_a_remote_context(service):
    status, body = service.json("POST", "/build?platform=windows/amd64", body=b"")
    assert status == 400 and "operating system is not supported" in body["message"]
    status, body = service.json("POST", "/build?remote=https://example.invalid/ctx.tar", body=b"")
    assert status == 400 and "not supported" in body["message"]


def test_garbage_tar_bodies_are_clear_errors(service):
    status, headers, body = service.request("POST", "/images/load", body=b"not a tar at all" * 100,
                                            headers={"Content-Type": "application/x-tar"})
    assert 400 <= status < 500, (status, body)
    assert json.loads(body)["message"]
    status, headers, body = service.request("POST", "/build", body=b"\0" * 10,
                                            headers={"Content-Type": "application/x-tar"})
    assert status == 400 and json.loads(body)["message"].startswith("Dockerfile:1: unknown instruction"), body
    assert service.request("GET", "/_ping")[0] == 200


def test_malformed_registry_auth_header_is_a_400(service):
    status, _, body = service.request("POST", "/images/create?fromImage=apitest/x&tag=1",
                                      headers={"X-Registry-Auth": "!!not base64!!"})
    assert status == 400 and json.loads(body)["message"].startswith("invalid X-Registry-Auth header")
    status, _, body = service.request("POST", "/images/create?fromImage=Bad%20Name", headers={"X-Registry-Auth": "e30="})
    assert status == 400


def test_idle_service_memory_is_small(service):
    """The issue's budget: <= 40 MB resident while idle (after serving requests)."""
    for path in ("/_ping", "/version", "/info", "/images/json", "/containers/json?all=1", "/system/df"):
        assert service.request("GET", path)[0] == 200
    with open(f"/proc/{service.proc.pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    assert rss_kb < 40 * 1024, rss_kb
