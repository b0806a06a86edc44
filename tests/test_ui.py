"""`lamina ui` (issue 14): the local web view, over plain HTTP and in a real headless
browser (Debian's chromium + chromium-driver through selenium).

The store is built here from the busybox fixture: two images FROM the same base
(their base layer must be drawn once), a container with known changes, a rebuild
whose cache misses for a known reason, and a 100k-file layer.  The server runs as
`lamina ui --no-browser` in a subprocess, as a user runs it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

import pytest

from conftest import requires_root
from test_build_exec import LAMINA, build, ctx, lamina

pytestmark = requires_root

APP = "FROM base\nCOPY a.txt /data/a.txt\nRUN mkdir -p /opt/x && echo hi > /opt/x/f && rm /bin/vi\n"
# a file name that is markup: it must reach the page as text
EVIL = "<img src=x onerror=window.pwned=1>"
WEB = f"FROM base\nRUN mkdir /web && echo '<b>x</b>' > '/web/{EVIL}'\n"
HUGE = "FROM base\nRUN mkdir /big && cd /big && seq 1 100000 | xargs touch\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar):
    r = tmp_path_factory.mktemp("ui") / "store"
    lamina(r, "import", busybox_tar, "base:latest")
    app = ctx(tmp_path_factory.mktemp("ui-app"), APP, {"a.txt": "hello"})
    build(r, app, "-t", "app:1")
    build(r, ctx(tmp_path_factory.mktemp("ui-web"), WEB), "-t", "web:1")
    build(r, ctx(tmp_path_factory.mktemp("ui-huge"), HUGE), "-t", "huge:1")
    (app / "a.txt").write_text("changed")
    build(r, app, "-t", "app:2")  # the last build: COPY misses for a.txt, RUN for its parent
    lamina(r, "run", "--name", "ctr", "app:1", "sh", "-c", "echo z > /data/a.txt; rm /opt/x/f; mkdir /new")
    yield r
    lamina(r, "rm", "-f", "ctr")


class Server:
    def __init__(self, root) -> None:
        self.proc = subprocess.Popen(LAMINA + ["--root", str(root), "ui", "--no-browser"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.url = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if "http://" in line:
                self.url = line.strip()
                break
        if not self.url:
            self.stop()
            raise AssertionError(f"lamina ui printed no URL: {self.proc.stderr.read()}")
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port
        self.token = parts.query.removeprefix("token=")

    def get(self, path: str, headers: dict | None = None, method: str = "GET"):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def api(self, path: str):
        status, _, body = self.get(path + ("&" if "?" in path else "?") + "token=" + self.token)
        return status, json.loads(body)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(store):
    s = Server(store)
    yield s
    s.stop()


def diff_ids(store, name: str) -> list[str]:
    out = lamina(store, "inspect", "--type", "image", name).stdout
    return json.loads(out)[0]["RootFS"]["Layers"]


def image_id(store, name: str) -> str:
    return json.loads(lamina(store, "inspect", "--type", "image", name).stdout)[0]["Id"]


# --------------------------------------------------------------------- plain HTTP


def test_the_url_is_loopback_with_a_random_token(server, store):
    assert server.host == "127.0.0.1" and len(server.token) >= 32
    other = Server(store)  # a second server: another port, another token
    try:
        assert other.token != server.token and other.port != server.port
    finally:
        other.stop()


def test_without_the_token_nothing_is_served(server):
    for path in ("/", "/app.js", "/app.css", "/api/store", "/api/files?id=app:1&index=1", "/nope"):
        for query in ("", "?token=", "?token=wrong", "?token=" + server.token[:-1]):
            sep = "&" if "?" in path and query else ""
            status, _, body = server.get(path + (sep + query[1:] if sep else query))
            assert status == 403, (path, query)
            assert body.startswith(b"403 Forbidden") and b"<" not in body and b"sha256" not in body
    # a wrong cookie is no better; nor is another method
    assert server.get("/api/store", {"Cookie": f"lamina_ui_token_{server.port}=wrong"})[0] == 403
    # another server's cookie (browsers keep cookies per host, not per port) opens nothing here
    assert server.get("/api/store", {"Cookie": f"lamina_ui_token_1={server.token}"})[0] == 403
    assert server.get("/api/store", method="POST")[0] == 403


def test_the_token_opens_the_page_and_sets_a_cookie(server):
    status, headers, body = server.get("/?token=" + server.token)
    assert status == 200 and b'<script src="/app.js"' in body
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"lamina_ui_token_{server.port}={server.token};") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    # the page's own requests carry the cookie only
    status, _, body = server.get("/api/store", {"Cookie": f"other=1; lamina_ui_token_{server.port}={server.token}"})
    assert status == 200 and json.loads(body)["images"]
    # another Host (a DNS-rebinding page) is refused even with the token
    assert server.get("/?token=" + server.token, {"Host": "evil.example:80"})[0] == 403
    assert server.get("/api/store?token=" + server.token, method="POST")[0] == 405


def test_store_endpoint_draws_the_shared_base_once(server, store):
    status, data = server.api("/api/store")
    assert status == 200
    base = diff_ids(store, "base")[0]
    assert [n["diff_id"] for n in data["forest"]] == [base]  # one root: every image is FROM base
    tops = {i["names"][0]: i["top"] for i in data["images"] if i["names"]}
    assert set(tops) >= {"base:latest", "app:1", "app:2", "web:1", "huge:1"}
    assert data["forest"][0]["size"] > 1_000_000 and data["forest"][0]["size_h"].endswith("MB")
    ctr = [c for c in data["containers"] if c["name"] == "ctr"]
    assert ctr and ctr[0]["image_id"] == image_id(store, "app:1")


def test_api_bad_input_is_a_json_error(server):
    status, body = server.api("/api/image?id=nope:1")
    assert status == 404 and "No such image: nope:1" in body["message"]
    status, body = server.api("/api/files?id=app:1&index=9")
    assert status == 404 and "no layer 9" in body["message"]
    assert server.api("/api/files?id=app:1&index=x")[0] == 400
    assert server.api("/api/files?id=app:1&index=1&under=etc")[0] == 400
    assert server.api("/api/diff?a=app:1")[0] == 400
    assert server.api("/api/diff?a=app:1&b=nope")[0] == 404
    assert server.api("/api/container?id=nope")[0] == 404
    assert server.api("/api/nope")[0] == 404


def test_a_100k_file_layer_comes_a_page_at_a_time(server, store):
    status, report = server.api("/api/image?id=huge:1")  # the scan, once (then cached by image ID)
    assert status == 200 and report["layers"][1]["added"] == 100_001
    t0 = time.monotonic()
    status, top = server.api("/api/files?id=huge:1&index=2")
    assert status == 200 and [e["path"] for e in top["entries"]] == ["/big"]
    status, page = server.api("/api/files?id=huge:1&index=2&under=/big")
    took = time.monotonic() - t0
    assert page["total"] == 100_000 and len(page["entries"]) == 500 and page["next_offset"] == 500
    status, last = server.api("/api/files?id=huge:1&index=2&under=/big&offset=99900")
    assert len(last["entries"]) == 100 and last["next_offset"] is None
    assert took < 2.0, took


def test_ui_flag_errors_are_one_line(store, server):
    p = lamina(store, "ui", "--no-browser", "--port", "70000", check=False)
    assert p.returncode == 1 and p.stderr.decode() == "Error: invalid port 70000: it must be between 0 and 65535\n"
    p = lamina(store, "ui", "--no-browser", "--port", str(server.port), check=False)  # taken by the fixture's
    assert p.returncode == 1 and p.stderr.decode() == \
        f"Error: listen tcp 127.0.0.1:{server.port}: bind: address already in use\n"


def test_an_image_is_explored_once_then_served_from_the_cache(store, monkeypatch):
    from lamina.engine import layerviews
    from lamina.system import System
    from lamina.ui import views

    calls = []
    real = layerviews.explore

    def counted(system, name, **kw):
        calls.append(name)
        return real(system, name, **kw)

    monkeypatch.setattr(layerviews, "explore", counted)
    monkeypatch.setattr(views, "EXPLORATIONS", views._Explorations(keep=2))
    system = System(str(store))
    try:
        first = views.image(system, {"id": "app:1"})
        assert views.image(system, {"id": first["id"]}) == first  # by name or by ID: one entry
        page = views.files(system, {"id": "app:1", "index": "3", "under": "/opt/x"})
        assert [(e["path"], e["mark"]) for e in page["entries"]] == [("/opt/x/f", "A")]
        assert calls == [first["id"]]
        views.image(system, {"id": "web:1"})
        views.image(system, {"id": "app:2"})  # keeps the last two: app:1 goes
        views.image(system, {"id": "app:1"})
        assert len(calls) == 4
    finally:
        system.close()


# --------------------------------------------------------------------- in a real browser


def _browser():
    """A headless chromium through chromedriver, or a loud skip."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("SKIPPED LOUDLY: selenium is not installed (pip install selenium; scripts/setup)")
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("SKIPPED LOUDLY: Debian's chromium and chromium-driver are not installed (scripts/setup)")
    profile = tempfile.mkdtemp(prefix="lamina-ui-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,900"):
        opts.add_argument(a)
    try:
        drv = webdriver.Chrome(service=Service(driver), options=opts)
    except Exception as e:  # noqa: BLE001 - a chromium that cannot start here is a skip, said loudly
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"SKIPPED LOUDLY: chromium does not start here: {str(e).splitlines()[0]}")
    drv.implicitly_wait(0)
    return drv, profile


@pytest.fixture(scope="module")
def browser():
    drv, profile = _browser()
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_for(drv, css: str, timeout: float = 10.0, count: int = 1):
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        found = drv.find_elements(By.CSS_SELECTOR, css)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {css} after {timeout}s; page: {drv.find_element(By.TAG_NAME, 'body').text}")
        time.sleep(0.05)


def css_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def page(browser, server):
    browser.get(server.url)
    wait_for(browser, ".layer")
    return browser


def test_browser_is_refused_without_the_token(browser, server):
    browser.delete_all_cookies()
    browser.get(f"http://127.0.0.1:{server.port}/")
    assert "403 Forbidden" in browser.page_source and not browser.find_elements("css selector", ".layer")


def test_page_draws_the_shared_base_layer_as_one_box(page, store, server):
    from selenium.webdriver.common.by import By

    base = diff_ids(store, "base")[0]
    boxes = page.find_elements(By.CSS_SELECTOR, f".layer[data-diff-id={css_str(base)}]")
    assert len(boxes) == 1
    # the images above it: every image FROM base sits in the node of that one box
    node = boxes[0].find_element(By.XPATH, "..")
    caps = {e.text.split(" ")[0] for e in node.find_elements(By.CSS_SELECTOR, ".cap .name")}
    assert {"app:1", "web:1", "base:latest"} <= caps
    # app:1 and app:2 share their first two layers: their COPY layers differ, so two boxes there
    app1, app2 = diff_ids(store, "app:1"), diff_ids(store, "app:2")
    assert app1[0] == app2[0] and app1[1] != app2[1]
    for d in (app1[1], app2[1], app1[2]):
        assert len(page.find_elements(By.CSS_SELECTOR, f".layer[data-diff-id={css_str(d)}]")) == 1
    # sizes to scale (the largest box 160px), with a minimum (22px) for the small ones
    sizes = {}

    def walk(nodes):
        for n in nodes:
            sizes[n["diff_id"]] = n["size"]
            walk(n["children"])

    walk(server.api("/api/store")[1]["forest"])
    largest = max(sizes.values())
    for d, size in sizes.items():
        box = page.find_element(By.CSS_SELECTOR, f".layer[data-diff-id={css_str(d)}]")
        assert abs(box.size["height"] - max(22, round(size / largest * 160))) <= 1, (d, size, largest)
    huge = page.find_element(By.CSS_SELECTOR, f".layer[data-diff-id={css_str(diff_ids(store, 'huge:1')[1])}]")
    assert huge.size["height"] == 160 and boxes[0].size["height"] < 160
    assert page.execute_script("return window.pwned") is None


def test_clicking_a_layer_shows_its_files(page, store):
    from selenium.webdriver.common.by import By

    top = diff_ids(store, "app:1")[2]
    page.find_element(By.CSS_SELECTOR, f".layer[data-diff-id={css_str(top)}]").click()
    wait_for(page, '#files li[data-path="/opt"]')
    assert page.find_element(By.CSS_SELECTOR, '#files li[data-path="/opt"]').get_attribute("data-mark") == "A"
    assert page.find_element(By.CSS_SELECTOR, '#files li[data-path="/bin"]').get_attribute("data-mark") == "U"
    assert not page.find_elements(By.CSS_SELECTOR, '#files li[data-path="/bin/vi"]')  # not loaded yet: lazy
    page.find_element(By.CSS_SELECTOR, '#files li[data-path="/bin"] > .entry .name').click()
    vi = wait_for(page, '#files li[data-path="/bin/vi"]')[0]
    assert vi.get_attribute("data-mark") == "D"
    page.find_element(By.CSS_SELECTOR, '#files li[data-path="/opt"] > .entry .name').click()
    wait_for(page, '#files li[data-path="/opt/x"]')[0].find_element(By.CSS_SELECTOR, ".entry .name").click()
    assert wait_for(page, '#files li[data-path="/opt/x/f"]')[0].get_attribute("data-mark") == "A"
    # a file name that is markup shows as text, and runs nothing
    page.find_element(By.CSS_SELECTOR, f".layer[data-diff-id={css_str(diff_ids(store, 'web:1')[1])}]").click()
    wait_for(page, '#files li[data-path="/web"]')
    page.find_element(By.CSS_SELECTOR, '#files li[data-path="/web"] > .entry .name').click()
    evil = wait_for(page, f"#files li[data-path={css_str('/web/' + EVIL)}]")[0]
    assert evil.find_element(By.CSS_SELECTOR, ".name").text == EVIL
    assert not page.find_elements(By.CSS_SELECTOR, "#detail img") and page.execute_script("return window.pwned") is None


def test_a_huge_layer_opens_without_hanging(page, store):
    from selenium.webdriver.common.by import By

    layer = diff_ids(store, "huge:1")[1]
    page.find_element(By.CSS_SELECTOR, f".layer[data-diff-id={css_str(layer)}]").click()
    wait_for(page, '#files li[data-path="/big"]', timeout=30)
    t0 = time.monotonic()
    page.find_element(By.CSS_SELECTOR, '#files li[data-path="/big"] > .entry .name').click()
    wait_for(page, '#files li[data-path="/big"] li.file', count=500)
    assert time.monotonic() - t0 < 3
    assert len(page.find_elements(By.CSS_SELECTOR, '#files li[data-path="/big"] li.file')) == 500
    page.find_element(By.CSS_SELECTOR, '#files li[data-path="/big"] button.more').click()
    wait_for(page, '#files li[data-path="/big"] li.file', count=1000)


def test_the_diff_view_lists_the_right_changes(page, store):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(page.find_element(By.ID, "diff-a")).select_by_value(image_id(store, "app:1"))
    Select(page.find_element(By.ID, "diff-b")).select_by_value(image_id(store, "web:1"))
    page.find_element(By.ID, "diff-go").click()
    rows = wait_for(page, "#diff tr[data-kind]")
    got = [(r.get_attribute("data-kind"), r.get_attribute("data-path")) for r in rows]
    # in `image diff`'s order (docker diff's: deletions after the walk of the new tree)
    assert got == [("C", "/bin"), ("A", "/bin/vi"), ("A", "/web"), ("A", "/web/" + EVIL), ("D", "/data"),
                   ("D", "/opt")]
    assert "2 shared" not in page.find_element(By.ID, "diff").text
    assert "1 shared layers" in page.find_element(By.ID, "diff").text
    # clicking two image names in the picture diffs them too
    caps = {c.find_element(By.CSS_SELECTOR, ".name").text: c for c in page.find_elements(By.CSS_SELECTOR, ".cap")}
    caps["app:1"].click()
    caps["app:2"].click()
    wait_for(page, '#diff tr[data-path="/data/a.txt"]')
    got = [(r.get_attribute("data-kind"), r.get_attribute("data-path"))
           for r in page.find_elements(By.CSS_SELECTOR, "#diff tr[data-kind]")]
    # the COPY layer differs, and so does the RUN above it (rebuilt: new mtimes)
    assert got == [("C", "/data"), ("C", "/data/a.txt"), ("C", "/opt"), ("C", "/opt/x"), ("C", "/opt/x/f")]


def test_a_container_is_its_writable_layer_with_its_diff(page, store):
    from selenium.webdriver.common.by import By

    ctr = json.loads(lamina(store, "inspect", "ctr").stdout)[0]["Id"]
    box = page.find_element(By.CSS_SELECTOR, f".cbox[data-container-id={css_str(ctr)}]")
    assert "ctr" in box.text
    # drawn on its image: the container box sits in the tip above app:1's name
    tip = box.find_element(By.XPATH, "..")
    assert tip.find_element(By.CSS_SELECTOR, ".cap .name").text == "app:1"
    box.click()
    wait_for(page, '#detail tr[data-kind]')
    got = [(r.get_attribute("data-kind"), r.get_attribute("data-path"))
           for r in page.find_elements(By.CSS_SELECTOR, "#detail tr[data-kind]")]
    assert got == [("C", "/data"), ("C", "/data/a.txt"), ("A", "/new"), ("C", "/opt"), ("C", "/opt/x"),
                   ("D", "/opt/x/f")]


def test_a_running_container_shows_its_live_diff(browser, server, store):
    from selenium.webdriver.common.by import By

    live = lamina(store, "run", "-d", "--name", "live", "app:1", "sleep", "300").stdout.decode().strip()
    try:
        browser.get(server.url)
        box = wait_for(browser, f".cbox.running[data-container-id={css_str(live)}]")[0]
        box.click()
        wait_for(browser, "#detail tr")
        assert not browser.find_elements(By.CSS_SELECTOR, "#detail tr[data-kind]")  # nothing changed yet
        lamina(store, "exec", "live", "sh", "-c", "echo now > /now.txt && rm /data/a.txt")
        box.click()
        wait_for(browser, '#detail tr[data-path="/now.txt"]')
        got = [(r.get_attribute("data-kind"), r.get_attribute("data-path"))
               for r in browser.find_elements(By.CSS_SELECTOR, "#detail tr[data-kind]")]
        assert got == [("C", "/data"), ("D", "/data/a.txt"), ("A", "/now.txt")]
    finally:
        lamina(store, "rm", "-f", "live")


def test_build_steps_show_hit_miss_and_why(page):
    from selenium.webdriver.common.by import By

    rows = wait_for(page, "#build tr[data-result]", count=3)
    got = [(r.get_attribute("data-result"), r.find_elements(By.TAG_NAME, "td")[3].text) for r in rows]
    assert got[1] == ("MISS", "context file changed: a.txt")
    assert got[2] == ("MISS", "parent image changed: the step before was rebuilt")
    # an earlier build: web:1 built fresh
    opts = page.find_elements(By.CSS_SELECTOR, "#build-select option")
    assert len(opts) == 4


def test_the_picture_of_50_images_is_drawn_within_a_second(browser, busybox_tar, tmp_path):
    r = tmp_path / "store"
    lamina(r, "import", busybox_tar, "base:latest")
    d = ctx(tmp_path, "FROM base\nCOPY f /f\n", {"f": ""})
    for i in range(50):
        (d / "f").write_text(f"image {i}\n")
        build(r, d, "-q", "-t", f"img{i}:latest")
    s = Server(r)
    try:
        t0 = time.monotonic()
        status, data = s.api("/api/store")
        endpoint = time.monotonic() - t0
        assert status == 200 and len(data["images"]) == 51
        browser.get(s.url)
        wait_for(browser, ".cap", count=51)
        timings = browser.execute_script("return window.laminaTimings")
        print(f"\n50 images: /api/store {endpoint * 1000:.0f} ms (over HTTP); in the browser: fetch "
              f"{timings['fetch']:.0f} ms, render {timings['render']:.0f} ms, navigation to picture "
              f"{timings['sinceNavigation']:.0f} ms")
        assert timings["sinceNavigation"] <= 1000, timings
        assert len(browser.find_elements("css selector", ".layer")) == 51  # one base + 50 COPY layers
        if os.environ.get("LAMINA_UI_SCREENSHOT"):
            browser.save_screenshot(os.environ["LAMINA_UI_SCREENSHOT"])
    finally:
        s.stop()
