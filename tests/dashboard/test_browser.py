"""The web dashboard in a real browser: Debian's Chromium driven by Playwright, against a
real ``onestack up`` (fake hypervisor, storage and network drivers, so instances go
ACTIVE in seconds).

One server and one browser for the module; the tests run in order and build on each
other as a customer would: sign in, make a network, subnet and router, launch an
instance and watch it go ACTIVE without reloading, read its console, use its serial
console, give it a floating IP, upload an image, then delete everything. Bad input, a
form without its CSRF token, a member at the admin pages and logout are checked on the
way. Screenshots of each main page go to ``$ONESTACK_DASHBOARD_SCREENSHOTS`` (the ones
in docs/dashboard/ were made so) or the test's tmp dir.

The serial console test puts a listener on the guest's serial socket (the fake
hypervisor has no guest behind it): it prints boot text and echoes what it is sent, so
the test proves the page's terminal, the Compute API's console URL and the websocket
relay end to end, keys both ways.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, start_server

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

PASSWORD = "alice-Secret-1"
TERMINAL_TEXT = """() => { const b = window.onestackTerminal.buffer.active; let s = '';
  for (let i = 0; i < b.length; i++) { s += b.getLine(i).translateToString(true) + '\\n'; }
  return s; }"""
UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length)
          && !e.getAttribute('aria-label')).map(e => e.name || e.id)"""


@dataclass
class World:
    server: Server
    admin: str            # admin token
    alice_project: str
    image_id: str
    shots: Path

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, method: str, path: str, token: str | None = None, **kw: Any
            ) -> httpx.Response:
        headers = {"X-Auth-Token": token or self.admin, **kw.pop("headers", {})}
        if path.startswith("/compute"):
            headers["OpenStack-API-Version"] = "compute 2.91"
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def alice(self) -> str:
        return self.server.password_token("alice", PASSWORD, project="demo")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    base = Path(tempfile.mkdtemp(prefix="osd"))   # short: unix socket paths live under it
    server = start_server(base)
    try:
        admin = server.password_token()
        w = World(server, admin, "", "", Path(os.environ.get(
            "ONESTACK_DASHBOARD_SCREENSHOTS") or base / "shots"))
        w.shots.mkdir(parents=True, exist_ok=True)
        project = w.api("POST", "/v3/projects", json={"project": {"name": "demo"}})
        w.alice_project = project.json()["project"]["id"]
        user = w.api("POST", "/v3/users", json={"user": {
            "name": "alice", "password": PASSWORD, "default_project_id": w.alice_project}})
        roles = {r["name"]: r["id"] for r in w.api("GET", "/v3/roles").json()["roles"]}
        w.api("PUT", f"/v3/projects/{w.alice_project}/users/{user.json()['user']['id']}"
                     f"/roles/{roles['member']}").raise_for_status()
        image = w.api("POST", "/image/v2/images", json={
            "name": "tiny-linux", "disk_format": "raw", "container_format": "bare",
            "visibility": "public"}).json()
        w.api("PUT", f"/image/v2/images/{image['id']}/file", content=b"\0" * 65536,
              headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        w.image_id = image["id"]
        # two instances at most, to show an over-quota launch
        w.api("PUT", f"/compute/v2.1/os-quota-sets/{w.alice_project}", json={
            "quota_set": {"instances": 2}}).raise_for_status()
        yield w
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def sign_in(page: Any, world: World, name: str, password: str) -> None:
    page.goto(world.url + "/", wait_until="domcontentloaded")   # the root sends browsers on
    page.fill("#name", name)
    page.fill("#password", password)
    page.fill("#domain", "Default")
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/overview")


@pytest.fixture(scope="module")
def alice(browser: Any, world: World) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda d: d.accept())
    page.set_default_timeout(30000)
    yield page
    context.close()


def shot(page: Any, world: World, name: str) -> None:
    page.screenshot(path=str(world.shots / f"{name}.png"), full_page=True)


def labelled(page: Any) -> None:
    assert page.evaluate(UNLABELLED) == [], f"{page.url}: a form field without a label"


def flash(page: Any) -> str:
    return " ".join(page.locator(".flash, .form-error").all_inner_texts())


def flashed(page: Any, text: str, timeout: float = 20.0) -> None:
    """Wait for the page the last click led to to show ``text`` as its message."""
    deadline = time.monotonic() + timeout
    while text not in flash(page):
        assert time.monotonic() < deadline, f"no message {text!r}: {flash(page)!r}"
        time.sleep(0.1)


def servers_of(world: World) -> list[dict[str, Any]]:
    return world.api("GET", "/compute/v2.1/servers/detail", token=world.alice()
                     ).json()["servers"]


# -- signing in -------------------------------------------------------------------------


def test_login_wrong_password_then_overview(alice: Any, world: World) -> None:
    alice.goto(world.url + "/", wait_until="domcontentloaded")
    assert alice.url.endswith("/dashboard/login?next=/dashboard/overview") or \
        "/dashboard/login" in alice.url
    shot(alice, world, "login")
    labelled(alice)
    alice.fill("#name", "alice")
    alice.fill("#password", "not-her-password")
    alice.click("button[type=submit]")
    assert "The user name, password or domain is wrong." in alice.inner_text(".form-error")
    sign_in(alice, world, "alice", PASSWORD)
    assert alice.inner_text("#project-switch option[selected]") == "demo"
    bars = alice.locator(".quota").all_inner_texts()
    assert any("Instances" in b and "0 of 2" in b for b in bars), bars
    assert alice.locator(".admin-nav").count() == 0
    shot(alice, world, "overview")


def test_forms_without_csrf_token_are_refused(alice: Any, world: World) -> None:
    r = alice.request.post(world.url + "/dashboard/networks",
                           form={"form": "network", "name": "csrf-probe"})
    assert r.status == 403 and "CSRF" in r.text()
    r = alice.request.post(world.url + "/dashboard/login",
                           form={"name": "alice", "password": PASSWORD})
    assert r.status == 403
    names = [n["name"] for n in world.api("GET", "/network/v2.0/networks").json()["networks"]]
    assert "csrf-probe" not in names


def test_member_does_not_see_admin_pages(alice: Any, world: World) -> None:
    for path in ("/admin/projects", "/admin/hypervisors", "/admin/instances"):
        r = alice.goto(world.url + "/dashboard" + path)
        assert r.status == 403
        assert "for cloud administrators" in alice.inner_text("main")


# -- networks, the topology -------------------------------------------------------------


def test_network_subnet_router_and_topology(alice: Any, world: World) -> None:
    alice.goto(world.url + "/dashboard/networks")
    labelled(alice)
    alice.fill("#n-name", "web-net")
    alice.click("#network-form button[type=submit]")
    flashed(alice, "Network web-net created.")
    # a bad CIDR: the API's message, in the form, and no subnet
    alice.select_option("#s-net", label="web-net")
    alice.fill("#s-name", "web-subnet")
    alice.fill("#s-cidr", "10.20.0.0/33")
    with alice.expect_navigation():
        alice.click("#subnet-form button[type=submit]")
    error = alice.inner_text("#subnet-form .form-error")
    assert error and ("10.20.0.0/33" in error or "cidr" in error.lower()), error
    assert alice.input_value("#s-cidr") == "10.20.0.0/33"   # as typed
    alice.fill("#s-cidr", "10.20.0.0/24")
    alice.click("#subnet-form button[type=submit]")
    flashed(alice, "Subnet web-subnet created.")
    assert "10.20.0.0/24" in alice.inner_text("tr[data-network='web-net']")
    shot(alice, world, "networks")

    alice.goto(world.url + "/dashboard/routers")
    alice.fill("#r-name", "web-router")
    alice.select_option("#r-ext", label="public")
    alice.click("#router-form button[type=submit]")
    flashed(alice, "Router web-router created.")
    card = alice.locator("section[data-router='web-router']")
    card.locator("select").select_option(label="web-subnet 10.20.0.0/24")
    card.locator("button", has_text="Add interface").click()
    flashed(alice, "Interface added.")
    assert "10.20.0.0/24" in alice.inner_text("section[data-router='web-router']")
    shot(alice, world, "routers")

    alice.goto(world.url + "/dashboard/topology")
    svg = alice.locator("svg.topology")
    assert svg.locator(".topo-network[data-name='web-net']").count() == 1
    assert svg.locator(".topo-network.external[data-name='public']").count() == 1
    router = svg.locator(".topo-router[data-name='web-router']")
    assert router.count() == 1
    assert router.locator("circle").count() == 2   # on public (gateway) and on web-net


# -- instances --------------------------------------------------------------------------


def test_launch_bad_input_shows_the_api_message_and_makes_nothing(alice: Any,
                                                                  world: World) -> None:
    alice.goto(world.url + "/dashboard/instances/launch")
    labelled(alice)
    cases = [("", "1", "", "name"),                      # empty name
             ("big", "1", "x" * 70000, "user_data"),     # user data over 64 KiB
             ("many", "3", "", "Quota exceeded")]        # over the quota of 2
    for name, count, user_data, expect in cases:
        alice.fill("#l-name", name)
        alice.fill("#l-count", count)
        alice.select_option("#l-image", label="tiny-linux")
        alice.select_option("#l-flavor", value="1")
        alice.locator("label.check", has_text="web-net").locator("input").check()
        alice.fill("#l-userdata", user_data)
        with alice.expect_navigation():
            alice.click("#launch-form button[type=submit]")
        error = alice.inner_text("#launch-form .form-error")
        assert expect.lower() in error.lower(), (name, error)
        assert alice.input_value("#l-name") == name   # the form keeps what was typed
    shot(alice, world, "launch-error")
    assert servers_of(world) == []


def test_launch_goes_active_without_reloading(alice: Any, world: World) -> None:
    alice.goto(world.url + "/dashboard/instances/launch")
    alice.fill("#l-name", "web-1")
    alice.fill("#l-count", "1")
    alice.select_option("#l-image", label="tiny-linux")
    alice.select_option("#l-flavor", value="1")
    alice.locator("label.check", has_text="web-net").locator("input").check()
    alice.fill("#l-userdata", "#cloud-config\nhostname: web-1\n")
    alice.click("#launch-form button[type=submit]")
    alice.wait_for_url("**/dashboard/instances")
    alice.evaluate("window.__sameDocument = true")
    row = alice.locator("tr[data-server='web-1']")
    assert row.count() == 1
    seen = row.locator(".status").inner_text()
    playwright_api.expect(row.locator(".status")).to_have_text("ACTIVE", timeout=60000)
    assert alice.evaluate("window.__sameDocument") is True, "the page was reloaded"
    assert alice.get_attribute("#instance-list", "data-polling") == "no"
    assert "10.20.0." in row.inner_text()
    print(f"first status seen: {seen}")
    shot(alice, world, "instances")


def test_instance_detail_and_console_log(alice: Any, world: World) -> None:
    alice.click("tr[data-server='web-1'] a")
    alice.wait_for_selector("#console-log pre")
    playwright_api.expect(alice.locator("#console-log pre")).to_contain_text(
        "Linux version", timeout=20000)
    text = alice.inner_text("main")
    assert "m1.tiny" in text and "tiny-linux" in text and "create" in text
    labelled(alice)


def _fake_serial(path: Path, stop: threading.Event) -> threading.Thread:
    """A listener on the guest's serial socket: boot text, a prompt, then an echo."""
    path.parent.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(0.5)

    def run() -> None:
        with listener:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(b"[    0.000000] Linux version 6.1 (serial)\r\n"
                                 b"OneStack test guest\r\nweb-1 login: ")
                    conn.settimeout(0.5)
                    while not stop.is_set():
                        try:
                            data = conn.recv(4096)
                        except TimeoutError:
                            continue
                        if not data:
                            break
                        conn.sendall(data.replace(b"\r", b"\r\n"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_serial_console_in_the_page(alice: Any, world: World) -> None:
    server = next(s for s in servers_of(world) if s["name"] == "web-1")
    stop = threading.Event()
    sock = world.server.state_dir / "instances" / server["id"] / "console.sock"
    thread = _fake_serial(sock, stop)
    try:
        alice.goto(world.url + f"/dashboard/instances/{server['id']}/console")
        playwright_api.expect(alice.locator("#console-state")).to_have_text("connected")
        deadline = time.monotonic() + 20
        while "web-1 login:" not in alice.evaluate(TERMINAL_TEXT):
            assert time.monotonic() < deadline, alice.evaluate(TERMINAL_TEXT)
            time.sleep(0.2)
        assert "Linux version 6.1 (serial)" in alice.evaluate(TERMINAL_TEXT)
        alice.click("#terminal")
        alice.keyboard.type("root-typed-in-browser")
        alice.keyboard.press("Enter")
        deadline = time.monotonic() + 20
        while "root-typed-in-browser" not in alice.evaluate(TERMINAL_TEXT):
            assert time.monotonic() < deadline, alice.evaluate(TERMINAL_TEXT)
            time.sleep(0.2)
        shot(alice, world, "serial-console")
    finally:
        stop.set()
        thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()


def test_associate_floating_ip(alice: Any, world: World) -> None:
    server = next(s for s in servers_of(world) if s["name"] == "web-1")
    alice.goto(world.url + f"/dashboard/instances/{server['id']}")
    alice.select_option("#fip", value="new")
    alice.locator("form:has(#fip) button").click()
    flashed(alice, "associated")
    fips = world.api("GET", f"/network/v2.0/floatingips?project_id={world.alice_project}"
                     ).json()["floatingips"]
    assert len(fips) == 1 and fips[0]["port_id"]
    assert fips[0]["floating_ip_address"] in alice.inner_text("main")
    shot(alice, world, "instance")
    alice.goto(world.url + "/dashboard/floating-ips")
    assert "web-1" in alice.inner_text(f"tr[data-fip='{fips[0]['floating_ip_address']}']")
    alice.goto(world.url + "/dashboard/overview")
    bars = alice.locator(".quota").all_inner_texts()
    assert any("Instances" in b and "1 of 2" in b for b in bars), bars
    assert "web-1" in alice.inner_text("main")   # recent actions
    alice.goto(world.url + "/dashboard/topology")
    server_box = alice.locator("svg.topology .topo-server[data-name='web-1']")
    assert server_box.locator("circle").count() == 1   # on web-net
    shot(alice, world, "topology")


def test_volumes_create_attach_extend_snapshot(alice: Any, world: World) -> None:
    alice.goto(world.url + "/dashboard/volumes")
    labelled(alice)
    alice.fill("#v-name", "data-1")
    alice.fill("#v-size", "0")
    with alice.expect_navigation():
        alice.click("#volume-form button[type=submit]")
    assert "size" in alice.inner_text("#volume-form .form-error")   # the API's message
    alice.fill("#v-size", "1")
    alice.click("#volume-form button[type=submit]")
    card = alice.locator("section[data-volume='data-1']")
    playwright_api.expect(card.locator(".badge")).to_have_text("available", timeout=30000)
    card.locator("select[name=server_id]").select_option(label="web-1")
    card.locator("button", has_text="Attach").click()
    card = alice.locator("section[data-volume='data-1']")
    playwright_api.expect(card.locator(".badge")).to_have_text("in-use", timeout=30000)
    assert "Attached to web-1" in card.inner_text()
    card.locator("button", has_text="Detach").click()
    card = alice.locator("section[data-volume='data-1']")
    playwright_api.expect(card.locator(".badge")).to_have_text("available", timeout=30000)
    card.locator("input[name=size]").fill("2")
    card.locator("button", has_text="Extend").click()
    card = alice.locator("section[data-volume='data-1']")
    playwright_api.expect(card.locator("h2 small")).to_contain_text("2 GB", timeout=30000)
    card.locator("button", has_text="Snapshot").click()
    playwright_api.expect(alice.locator("tr[data-snapshot='data-1-snap']")).to_contain_text(
        "available", timeout=30000)
    shot(alice, world, "volumes")


def test_upload_image_with_progress(alice: Any, world: World, tmp_path: Path) -> None:
    data = tmp_path / "disk.raw"
    data.write_bytes(os.urandom(3 * 1024 * 1024))
    alice.goto(world.url + "/dashboard/images")
    labelled(alice)
    alice.fill("#u-name", "uploaded-disk")
    alice.set_input_files("#u-file", str(data))
    alice.select_option("#u-format", "raw")
    alice.select_option("#u-vis", "private")
    with alice.expect_navigation():
        alice.click("#upload-form button[type=submit]")
    flashed(alice, "Image uploaded.")
    row = alice.locator("tr[data-image='uploaded-disk']")
    assert "active" in row.inner_text() and "3.0 MiB" in row.inner_text()
    images = world.api("GET", "/image/v2/images?name=uploaded-disk").json()["images"]
    assert images[0]["size"] == 3 * 1024 * 1024
    # a visibility only an admin may set: the API's message, nothing changed
    with alice.expect_navigation():
        row.locator("select").select_option("public")
    assert alice.locator(".flash.error").count() == 1, flash(alice)
    assert images[0]["visibility"] == "private"
    with alice.expect_navigation():
        row.locator("select").select_option("shared")
    flashed(alice, "Visibility changed.")
    assert world.api("GET", f"/image/v2/images/{images[0]['id']}").json()[
        "visibility"] == "shared"
    shot(alice, world, "images")


def test_security_groups_and_key_pairs(alice: Any, world: World) -> None:
    alice.goto(world.url + "/dashboard/security-groups")
    labelled(alice)
    card = alice.locator("section[data-group='default']")
    card.locator("input[name=port_range_min]").fill("22")
    card.locator("input[name=port_range_max]").fill("22")
    card.locator("button", has_text="Add rule").click()
    flashed(alice, "Rule added.")
    shot(alice, world, "security-groups")
    alice.goto(world.url + "/dashboard/key-pairs")
    alice.fill("#k-name", "laptop")
    alice.locator("form:has(#k-name) button").click()
    assert "BEGIN" in (alice.text_content("#private-key pre") or "")
    with alice.expect_download() as download:
        alice.click("#private-key a")
    assert download.value.suggested_filename == "laptop.pem"
    alice.goto(world.url + "/dashboard/key-pairs")   # shown once: not again
    assert alice.locator("#private-key").count() == 0
    assert alice.locator("tr[data-keypair='laptop']").count() == 1


def test_phone_width(browser: Any, world: World) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        sign_in(page, world, "alice", PASSWORD)
        for name in ("overview", "instances"):
            page.goto(world.url + f"/dashboard/{name}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 391, f"{name} is {width}px wide on a 390px phone"
            shot(page, world, f"phone-{name}")
    finally:
        context.close()


def test_admin_pages(browser: Any, world: World) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, world, "admin", world.server.admin_password())
        assert page.locator(".admin-nav").count() == 1
        page.goto(world.url + "/dashboard/admin/instances")
        assert "web-1" in page.inner_text("main")
        shot(page, world, "admin-instances")
        page.goto(world.url + "/dashboard/admin/hypervisors")
        assert "compute-1" in page.inner_text("main")
        shot(page, world, "admin-hypervisors")
        page.goto(world.url + "/dashboard/admin/role-assignments")
        assert "user alice" in page.inner_text("main")
        page.goto(world.url + "/dashboard/admin/projects")
        assert "demo" in page.inner_text("main")
    finally:
        context.close()


# -- deleting everything, signing out ---------------------------------------------------


def test_delete_everything(alice: Any, world: World) -> None:
    alice.goto(world.url + "/dashboard/instances")
    alice.locator("tr[data-server='web-1'] button", has_text="Delete").click()
    alice.wait_for_url("**/dashboard/instances")
    alice.evaluate("window.__sameDocument = true")
    playwright_api.expect(alice.locator("tr[data-server='web-1']")).to_have_count(
        0, timeout=60000)
    assert alice.evaluate("window.__sameDocument") is True
    alice.goto(world.url + "/dashboard/floating-ips")
    alice.locator("tr[data-fip] button", has_text="Release").click()
    flashed(alice, "Released.")
    alice.goto(world.url + "/dashboard/routers")
    card = alice.locator("section[data-router='web-router']")
    card.locator("button", has_text="Remove").click()
    flashed(alice, "Interface removed.")
    alice.locator("section[data-router='web-router'] button", has_text="Delete").click()
    flashed(alice, "Router deleted.")
    alice.goto(world.url + "/dashboard/networks")
    alice.locator("tr[data-network='web-net'] .row button", has_text="Delete").click()
    flashed(alice, "Subnet deleted.")
    alice.locator("tr[data-network='web-net'] td.actions button").click()
    flashed(alice, "Network deleted.")
    alice.goto(world.url + "/dashboard/images")
    alice.locator("tr[data-image='uploaded-disk'] button", has_text="Delete").click()
    flashed(alice, "Image deleted.")
    alice.goto(world.url + "/dashboard/key-pairs")
    alice.locator("tr[data-keypair='laptop'] button").click()
    flashed(alice, "Key pair deleted.")
    alice.goto(world.url + "/dashboard/volumes")
    alice.locator("tr[data-snapshot='data-1-snap'] button").click()
    playwright_api.expect(alice.locator("tr[data-snapshot]")).to_have_count(0, timeout=30000)
    alice.locator("section[data-volume='data-1'] button", has_text="Delete").click()
    playwright_api.expect(alice.locator("section[data-volume]")).to_have_count(
        0, timeout=30000)
    token = world.alice()
    project = world.alice_project
    assert servers_of(world) == []
    for path, key in ((f"/network/v2.0/floatingips?project_id={project}", "floatingips"),
                      (f"/network/v2.0/routers?project_id={project}", "routers"),
                      (f"/network/v2.0/networks?project_id={project}", "networks"),
                      (f"/network/v2.0/subnets?project_id={project}", "subnets")):
        assert world.api("GET", path, token=token).json()[key] == [], path
    assert world.api("GET", "/image/v2/images?name=uploaded-disk").json()["images"] == []
    assert world.api("GET", "/compute/v2.1/os-keypairs", token=token).json()["keypairs"] == []
    assert world.api("GET", f"/volume/v3/{project}/volumes", token=token
                     ).json()["volumes"] == []


def test_logout_ends_the_session(alice: Any, world: World) -> None:
    alice.goto(world.url + "/dashboard/overview")
    cookies = alice.context.cookies()
    assert any(c["name"] == "onestack_session" and c["httpOnly"] and c["sameSite"] == "Lax"
               for c in cookies)
    alice.click("text=Sign out")
    alice.wait_for_url("**/dashboard/login?out=1")
    assert "You have signed out." in alice.inner_text("main")
    alice.context.add_cookies(cookies)   # the old cookie is no key any more
    alice.goto(world.url + "/dashboard/overview")
    assert "/dashboard/login" in alice.url
