"""The dashboard's serial console on a real guest: Chromium, a real ``onestack up``, QEMU.

One ``onestack up`` with the real drivers (QEMU under TCG, local disks, a Linux bridge,
dnsmasq and the metadata proxy) runs in a namespace of the test's own
(tests/host/harness.py); the harness moves this thread into it, so Debian's Chromium,
launched by Playwright from this thread afterwards, is in it too and reaches the
dashboard on the namespace's loopback. Nothing is made outside the namespace.

The admin signs in through the sign-in page, opens the instance's page and its serial
console (xterm.js on the Compute API's serial-console websocket, relayed to QEMU's
serial socket), and types into the guest's shell: a command whose output only a shell
that ran it prints (``$((6*7))`` expanded), then ``reboot -f``. The guest resets in the
same QEMU process, the websocket stays up, and the test image's boot markers of the new
boot (``ONESTACK-TEST: init started`` ... ``ONESTACK-TEST: done``) appear in the page's
terminal as the guest prints them. The screenshot goes to
``$ONESTACK_DASHBOARD_SCREENSHOTS`` (docs/dashboard/serial-console-qemu.png was made so)
or the test's tmp dir.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.cli.clouds import read_admin_password
from onestack.services.image.testimage import build_test_image
from tests.host.harness import NetnsHost, netns_host, openstack

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser, pytest.mark.root, pytest.mark.qemu,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, taps)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or
                       shutil.which("dnsmasq") is None, reason="needs QEMU and dnsmasq"),
]

BOOT_TIMEOUT = 180
#: The terminal's text, a wrapped row joined to the row it continues.
TERMINAL_TEXT = """() => { const b = window.onestackTerminal.buffer.active; let s = '';
  for (let i = 0; i < b.length; i++) { const l = b.getLine(i);
    s += (i && !l.isWrapped ? '\\n' : '') + l.translateToString(true); }
  return s; }"""


@pytest.fixture(scope="module")
def image_file() -> Path:
    return build_test_image()   # before the namespace: it may need apt


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, image_file: Path) -> Iterator[NetnsHost]:
    with netns_host(tmp_path_factory.mktemp("host"), ONESTACK_HOST_ACCEL="tcg") as h:
        yield h


@pytest.fixture(scope="module")
def server_id(host: NetnsHost, image_file: Path) -> str:
    openstack(host, "image", "create", "--disk-format", "qcow2", "--container-format",
              "bare", "--file", str(image_file), "--public", "testimg")
    openstack(host, "network", "create", "net1")
    openstack(host, "subnet", "create", "--network", "net1", "--subnet-range",
              "10.40.0.0/24", "sub1")
    server = openstack(host, "server", "create", "--image", "testimg", "--flavor",
                       "m1.nano", "--network", "net1", "--wait", "vm1", timeout=300)
    assert server["status"] == "ACTIVE", server
    return str(server["id"])


@pytest.fixture(scope="module")
def page(host: NetnsHost) -> Iterator[Any]:
    """Chromium, started from this thread: in the host's namespace."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(30000)
            yield page
        finally:
            browser.close()


def terminal(page: Any) -> str:
    return str(page.evaluate(TERMINAL_TEXT))


def wait_terminal(page: Any, predicate: Any, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = terminal(page)
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in the terminal after {timeout}s:\n"
                                 f"{text[-3000:]}")
        time.sleep(0.3)


def console_log(page: Any, host: NetnsHost, server_id: str) -> str:
    """The instance's console log, as the dashboard's instance page fetches it."""
    r = page.request.get(f"{host.url}/dashboard/instances/{server_id}/console-log")
    assert r.ok, r.status
    return str(r.text())


def test_serial_console_of_a_real_guest(page: Any, host: NetnsHost, server_id: str,
                                        tmp_path: Path) -> None:
    # Sign in as the admin through the sign-in page (the root page sends a browser on).
    password = read_admin_password(host.clouds_yaml)
    assert password
    page.goto(host.url + "/", wait_until="domcontentloaded")
    assert "/dashboard/login" in page.url
    page.fill("#name", "admin")
    page.fill("#password", password)
    page.fill("#domain", "Default")
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/overview")

    # The instance's page, then its serial console from the button there.
    page.goto(f"{host.url}/dashboard/instances/{server_id}")
    assert "vm1" in page.inner_text("main")
    page.click("a.button:has-text('Serial console')")
    page.wait_for_url(f"**/dashboard/instances/{server_id}/console")
    playwright_api.expect(page.locator("#console-state")).to_have_text("connected")

    # The first boot ends at a shell on the serial port: wait for its last marker.
    deadline = time.monotonic() + BOOT_TIMEOUT
    while "ONESTACK-TEST: done" not in console_log(page, host, server_id):
        assert time.monotonic() < deadline, console_log(page, host, server_id)[-3000:]
        time.sleep(1)

    # Keys reach the guest's shell: only a shell that ran the line prints 42.
    token = secrets.token_hex(4)
    page.click("#terminal")
    page.keyboard.type(f"echo hello-$((6*7))-{token}")
    page.keyboard.press("Enter")
    wait_terminal(page, lambda t: f"hello-42-{token}" in t, 30, "shell output")
    assert f"echo hello-$((6*7))-{token}" in terminal(page)   # the echoed line as typed

    # A reboot from the shell: the same QEMU process resets, the websocket stays, and
    # the new boot's markers show in the terminal as the guest prints them.
    page.keyboard.type("reboot -f")
    page.keyboard.press("Enter")

    def after_reboot(text: str) -> str:
        return text[text.rfind("reboot -f"):]

    text = wait_terminal(page, lambda t: "ONESTACK-TEST: done" in after_reboot(t),
                         BOOT_TIMEOUT, "boot markers after the reboot")
    boot = after_reboot(text)
    markers = [line.split("ONESTACK-TEST: ", 1)[1] for line in boot.splitlines()
               if "ONESTACK-TEST: " in line]
    assert markers[0].startswith("init started"), markers
    assert markers[-1].startswith("done"), markers
    assert any(m.startswith("dhcp ok 10.40.0.") for m in markers), markers
    assert any(m.startswith("metadata ok") for m in markers), markers
    assert page.inner_text("#console-state") == "connected"
    # The console log (the file QEMU appends to) saw both boots.
    assert console_log(page, host, server_id).count("ONESTACK-TEST: init started") == 2

    # The shell of the new boot answers too.
    page.keyboard.type(f"echo again-$((6*7))-{token}")
    page.keyboard.press("Enter")
    wait_terminal(page, lambda t: f"again-42-{token}" in t, 30, "shell output")

    shots = Path(os.environ.get("ONESTACK_DASHBOARD_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "serial-console-qemu.png"), full_page=True)
    status = openstack(host, "server", "show", server_id)["status"]
    assert status == "ACTIVE", status
