"""One contract for every transport of the host boundary (``onestack.hostlink``).

The same scenarios - boot, reboot, delete, console output, a restarted agent that
re-adopts its guest - run over each transport, with the fake drivers:

- ``inprocess``: the all-in-one mode, the agent inside the server process;
- ``http``: the server's app on a real loopback socket (uvicorn), and a standalone
  agent (``onestack.agent.standalone``, as ``onestack agent`` builds it) with its own
  state directory, its host credential and its own listener on another socket. The
  API calls of the test go to the same server.

Over HTTP, the host routes also refuse a request without a credential, with a wrong
one, with a Keystone token (the admin's included), and a host acting on another
host's instances, ports or images.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from onestack.agent.standalone import StandaloneAgent, build_standalone_agent
from onestack.hostlink.credentials import CredentialStore, host_authorization
from onestack.hostlink.http import HostLinkRefused, HttpServerLink
from tests.api.compute_helpers import action, boot, boot_env, nova, server, wait_for
from tests.conftest import Cloud, make_config, running_cloud

TRANSPORTS = ("inprocess", "http")


# -- the harness -------------------------------------------------------------------------


@contextlib.contextmanager
def serve(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """``app`` on a real loopback socket (``sock``, else a free port; bound before
    uvicorn starts, so nothing races for it); yields its URL. Lifespan off: the test
    owns the app's."""
    sock = sock or bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Link:
    """A cloud whose host ``host`` is reached over one transport."""

    transport: str
    cloud: Cloud
    host: str
    restart_agent: Callable[[], None]
    #: The guest's serial socket, on the host's machine.
    serial_path: Callable[[str], str]
    server_url: str = ""
    credentials: CredentialStore | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def inprocess_link(tmp_path: Path) -> Iterator[Link]:
    with running_cloud(tmp_path) as cloud:
        services = cloud.services

        def restart() -> None:
            services.stop_agent()
            services.start_agent()

        def serial_path(uuid: str) -> str:
            return services.agent.serial_endpoint(uuid).address

        yield Link("inprocess", cloud, cloud.config.host.name, restart, serial_path)


@contextlib.contextmanager
def http_link(tmp_path: Path) -> Iterator[Link]:
    host = "remote-1"
    with running_cloud(tmp_path, host_agent=False) as cloud:
        store = CredentialStore(cloud.config.state_dir)
        secret = store.create(host)
        agent_config = make_config(tmp_path / "agent-state")
        agent_config.host.name = host
        agent_config.state_dir.mkdir(parents=True, exist_ok=True)
        with serve(cloud.client.app) as server_url:
            current: dict[str, Any] = {}

            def start() -> None:
                # the listener's port is known once bound: bind, then advertise it
                sock = bound_socket()
                standalone = build_standalone_agent(
                    agent_config, server_url, host, secret,
                    listen_port=sock.getsockname()[1])
                stack = contextlib.ExitStack()
                stack.enter_context(serve(standalone.app(), sock))
                standalone.agent.start()
                current.update(standalone=standalone, stack=stack)

            def stop() -> None:
                standalone: StandaloneAgent = current["standalone"]
                standalone.close()
                current["stack"].close()

            def restart() -> None:
                stop()
                start()

            def serial_path(uuid: str) -> str:
                return current["standalone"].agent.serial_endpoint(uuid).address

            start()
            try:
                yield Link("http", cloud, host, restart, serial_path, server_url, store,
                           {"secret": secret})
            finally:
                stop()


@pytest.fixture(params=TRANSPORTS)
def link(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Link]:
    make = inprocess_link if request.param == "inprocess" else http_link
    with make(tmp_path) as link:
        yield link


def console(link: Link, server_id: str) -> str:
    r = action(link.cloud, server_id, {"os-getConsoleOutput": {}})
    assert r.status_code == 200, r.text
    return r.json()["output"]


def booted(link: Link, name: str = "vm") -> dict[str, Any]:
    env = boot_env(link.cloud)
    created = boot(link.cloud, env, name=name)
    body = wait_for(link.cloud, created["id"], "ACTIVE")
    assert body["OS-EXT-SRV-ATTR:host"] == link.host
    return body


# -- the scenarios, over every transport ---------------------------------------------------


def test_boot(link: Link) -> None:
    body = booted(link)
    assert body["OS-EXT-STS:power_state"] == 1
    ports = link.cloud.request("GET", f"/network/v2.0/ports?device_id={body['id']}").json()
    assert [p["status"] for p in ports["ports"]] == ["ACTIVE"]
    hypervisors = nova(link.cloud, "GET", "/os-hypervisors/detail").json()["hypervisors"]
    assert link.host in [h["hypervisor_hostname"] for h in hypervisors]


def test_reboot(link: Link) -> None:
    body = booted(link)
    r = action(link.cloud, body["id"], {"reboot": {"type": "SOFT"}})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 20
    while f"boot 2 of {body['id']}" not in console(link, body["id"]):
        assert time.monotonic() < deadline, "the guest was not rebooted"
        time.sleep(0.05)
    wait_for(link.cloud, body["id"], "ACTIVE")


def test_delete(link: Link) -> None:
    body = booted(link)
    r = nova(link.cloud, "DELETE", f"/servers/{body['id']}")
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 20
    while nova(link.cloud, "GET", f"/servers/{body['id']}").status_code != 404:
        assert time.monotonic() < deadline, "the server was not deleted"
        time.sleep(0.05)
    ports = link.cloud.request("GET", f"/network/v2.0/ports?device_id={body['id']}").json()
    assert ports["ports"] == []


def test_volume_attach_and_detach(link: Link) -> None:
    """The host plugs an attached volume and reports it (the volume goes in-use), and
    unplugs a detached one (available again): HostToServer.report_attachments."""
    from tests.api.volume_helpers import VolumeClient

    body = booted(link)
    volumes = VolumeClient(link.cloud)
    vol = volumes.create()
    r = nova(link.cloud, "POST", f"/servers/{body['id']}/os-volume_attachments",
             json={"volumeAttachment": {"volumeId": vol["id"]}})
    assert r.status_code == 200, r.text
    volumes.wait(vol["id"], "in-use")
    r = nova(link.cloud, "DELETE", f"/servers/{body['id']}/os-volume_attachments/"
                                   f"{vol['id']}")
    assert r.status_code == 202, r.text
    volumes.wait(vol["id"], "available")
    output = console(link, body["id"])
    assert f"virtio-blk {vol['id'][:20]} attached" in output
    assert f"virtio-blk {vol['id'][:20]} detached" in output


def test_volume_qos_limits_cross_to_the_host(link: Link) -> None:
    """A front-end QoS spec on the volume's type travels in the attachment's connection
    info to the host, whose hypervisor throttles the disk (the fake says so on the
    console)."""
    from tests.api.volume_helpers import VolumeClient

    body = booted(link)
    volumes = VolumeClient(link.cloud)
    vt = volumes.ok("POST", "/types", json={"volume_type": {"name": "slow"}})["volume_type"]
    qos = volumes.ok("POST", "/qos-specs", json={"qos_specs": {
        "name": "slow", "consumer": "front-end", "write_bytes_sec": "524288"}})["qos_specs"]
    volumes.ok("GET", f"/qos-specs/{qos['id']}/associate?vol_type_id={vt['id']}")
    vol = volumes.create(volume_type="slow")
    r = nova(link.cloud, "POST", f"/servers/{body['id']}/os-volume_attachments",
             json={"volumeAttachment": {"volumeId": vol["id"]}})
    assert r.status_code == 200, r.text
    volumes.wait(vol["id"], "in-use")
    assert f"virtio-blk {vol['id'][:20]} attached throttled write_bytes_sec=524288" in \
        console(link, body["id"])


def test_console_output(link: Link) -> None:
    body = booted(link)
    output = console(link, body["id"])
    assert f"boot 1 of {body['id']}: started" in output
    # Nova's tail: the log split on newlines, the last ``length`` pieces joined again; a
    # log ending in a newline has an empty last piece, so 2 gives its last line.
    r = action(link.cloud, body["id"], {"os-getConsoleOutput": {"length": 2}})
    assert r.status_code == 200, r.text
    tail = r.json()["output"]
    assert tail.count("\n") == 1 and tail.endswith("\n") and tail.strip() in output


def test_restarted_agent_adopts_its_guest(link: Link) -> None:
    body = booted(link)
    link.restart_agent()
    # a few passes of the new agent (poll interval 1 s in the tests)
    time.sleep(2.5)
    after = server(link.cloud, body["id"])
    assert after["status"] == "ACTIVE" and after["OS-EXT-STS:power_state"] == 1
    output = console(link, body["id"])
    assert f"boot 1 of {body['id']}" in output
    assert f"boot 2 of {body['id']}" not in output, "the restarted agent booted it again"
    # and it still serves new work
    second = booted(link, name="vm2")
    assert second["id"] != body["id"]


# -- HTTP only: who may call the host routes -------------------------------------------------


@pytest.fixture
def http(tmp_path: Path) -> Iterator[Link]:
    with http_link(tmp_path) as link:
        yield link


def post(link: Link, call: str, body: dict[str, Any], authorization: str | None = None,
         **headers: str) -> httpx.Response:
    if authorization is not None:
        headers["Authorization"] = authorization
    return httpx.post(f"{link.server_url}/hostlink/v1/{call}", json=body, headers=headers)


def test_http_refuses_without_the_host_credential(http: Link) -> None:
    body = {"host": http.host}
    secret = http.extra["secret"]
    assert post(http, "desired-state", body, host_authorization(http.host, secret)
                ).status_code == 200
    assert post(http, "desired-state", body).status_code == 401
    assert post(http, "desired-state", body, host_authorization(http.host, "wrong")
                ).status_code == 401
    assert post(http, "desired-state", body, f"Bearer {secret}").status_code == 401
    # Keystone tokens open nothing here, the administrator's neither
    assert post(http, "desired-state", body,
                **{"X-Auth-Token": http.cloud.admin_token}).status_code == 401
    # a credential that was deleted stops working at once
    assert http.credentials is not None
    other_secret = http.credentials.create("remote-2")
    assert post(http, "desired-state", {"host": "remote-2"},
                host_authorization("remote-2", other_secret)).status_code == 200
    http.credentials.delete("remote-2")
    assert post(http, "desired-state", {"host": "remote-2"},
                host_authorization("remote-2", other_secret)).status_code == 401


def test_http_a_host_acts_only_on_its_own(http: Link) -> None:
    body = booted(http)
    uuid = body["id"]
    assert http.credentials is not None
    other = http.credentials.create("remote-2")
    auth = host_authorization("remote-2", other)
    # another host's credential with this host's name, or this host's name claimed
    assert post(http, "desired-state", {"host": http.host},
                host_authorization(http.host, other)).status_code == 401
    assert post(http, "desired-state", {"host": http.host}, auth).status_code == 403
    assert post(http, "register", {"report": {
        "host": http.host, "hypervisor_hostname": http.host, "hypervisor_type": "fake",
        "hypervisor_version": 1, "accel": "tcg", "vcpus": 1, "memory_mb": 1,
        "local_gb": 1, "local_gb_used": 0}}, auth).status_code == 403
    for call, args in (
            ("finish-task", {"uuid": uuid, "expected_task_state": None,
                             "vm_state": "error"}),
            ("fail-task", {"uuid": uuid, "expected_task_state": None, "message": "x"}),
            ("report-power", {"uuid": uuid, "power_state": 4, "vm_state": "stopped"}),
            ("instance-deleted", {"uuid": uuid}),
            ("config-drive-files", {"uuid": uuid}),
            ("start-event", {"uuid": uuid, "event": "compute_stop_instance"})):
        r = post(http, call, args, auth)
        assert r.status_code == 403, f"{call}: {r.status_code} {r.text}"
    ports = http.cloud.request("GET", f"/network/v2.0/ports?device_id={uuid}").json()
    r = post(http, "set-port-status", {"port_ids": [ports["ports"][0]["id"]],
                                       "status": "DOWN"}, auth)
    assert r.status_code == 403, r.text
    image = body["image"]["id"]
    r = httpx.get(f"{http.server_url}/hostlink/v1/images/{image}",
                  headers={"Authorization": auth})
    assert r.status_code == 403, r.text
    r = httpx.put(f"{http.server_url}/hostlink/v1/images/{image}/snapshot", content=b"x",
                  headers={"Authorization": auth})
    assert r.status_code == 403, r.text
    # nothing changed: the server is as its own host left it
    after = server(http.cloud, uuid)
    assert after["status"] == "ACTIVE" and after["OS-EXT-STS:power_state"] == 1
    # while its own host reads its image
    own = HttpServerLink(http.server_url, http.host, http.extra["secret"])
    try:
        assert b"".join(own.open_image(image)) == b"\0" * 65536
        with pytest.raises(HostLinkRefused):
            HttpServerLink(http.server_url, "remote-2", other).desired_state(http.host)
    finally:
        own.close()


def test_server_to_host_calls(link: Link) -> None:
    """What the server asks a host through its handle: uptime, capabilities, console."""
    body = booted(link)
    handle = link.cloud.services.compute.host_links.get(link.host)
    assert handle is not None and handle.host == link.host
    assert "load average" in handle.uptime()
    capabilities = handle.capabilities()
    assert capabilities and all(isinstance(v, bool) for v in capabilities.values())
    assert f"boot 1 of {body['id']}" in handle.console_log(body["id"])
    assert handle.console_log(body["id"], 1).count("\n") == 1
    handle.wake()   # returns at once, whatever the host does with it


def test_snapshot(link: Link) -> None:
    """createImage: the host snapshots the disk and streams it to the server, which
    stores it as the queued image's data."""
    body = booted(link)
    r = action(link.cloud, body["id"], {"createImage": {"name": "snap"}})
    assert r.status_code == 202, r.text
    image_id = r.json()["image_id"]
    deadline = time.monotonic() + 20
    while (image := link.cloud.request("GET", f"/image/v2/images/{image_id}").json()
           )["status"] != "active":
        assert image["status"] in ("queued", "saving"), image
        assert time.monotonic() < deadline, f"the snapshot did not become active: {image}"
        time.sleep(0.05)
    data = link.cloud.request("GET", f"/image/v2/images/{image_id}/file").content
    assert data[:4] == b"QFI\xfb" and len(data) == image["size"]
    wait_for(link.cloud, body["id"], "ACTIVE")
    # the server's spool of a streamed snapshot is gone
    assert not list((link.cloud.config.state_dir / "tmp").glob("snapshot-*"))


def test_shelve_and_unshelve(link: Link) -> None:
    """Shelve: the host uploads the disk to the shelve image (its upload allowed while
    it shelves), moves the task through its steps and offloads the guest; the server
    takes it off the host. Unshelve: the host reads the shelve image (allowed while it
    unshelves) and boots from it."""
    body = booted(link)
    server_id = body["id"]
    assert action(link.cloud, server_id, {"shelve": None}).status_code == 202
    body = wait_for(link.cloud, server_id, "SHELVED_OFFLOADED")
    assert body["OS-EXT-SRV-ATTR:host"] is None
    images = link.cloud.request("GET", "/image/v2/images?name=vm-shelved").json()["images"]
    assert [i["status"] for i in images] == ["active"]
    assert action(link.cloud, server_id, {"unshelve": None}).status_code == 202
    body = wait_for(link.cloud, server_id, "ACTIVE")
    assert body["OS-EXT-SRV-ATTR:host"] == link.host
    assert link.cloud.request("GET", "/image/v2/images?name=vm-shelved").json()[
        "images"] == []


class UpperEcho:
    """A guest's serial port, as the test hears it: a unix socket that says
    ``login: `` and echoes what it reads in capitals."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    conn.sendall(b"login: ")
                    while data := conn.recv(4096):
                        conn.sendall(data.upper())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=TRANSPORTS)
def short_link(request: pytest.FixtureRequest) -> Iterator[Link]:
    """``link`` on a short path: a unix socket's path has at most 107 bytes."""
    base = Path(tempfile.mkdtemp(prefix="hl-", dir="/tmp"))
    make = inprocess_link if request.param == "inprocess" else http_link
    try:
        with make(base) as link:
            yield link
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_serial_console(short_link: Link) -> None:
    """The serial console's websocket reaches the guest's serial port: a unix socket
    of the server's own host, or a remote host's relay over HTTP."""
    link = short_link
    body = booted(link)
    echo = UpperEcho(Path(link.serial_path(body["id"])))
    try:
        r = nova(link.cloud, "POST", f"/servers/{body['id']}/remote-consoles",
                 microversion="2.6",
                 json={"remote_console": {"protocol": "serial", "type": "serial"}})
        assert r.status_code == 200, r.text
        path = r.json()["remote_console"]["url"].split("127.0.0.1:5000", 1)[1]
        with link.cloud.client.websocket_connect(path, subprotocols=["binary"]) as ws:
            assert ws.receive_bytes() == b"login: "
            ws.send_bytes(b"root\n")
            assert ws.receive_bytes() == b"ROOT\n"
    finally:
        echo.close()


def test_router_and_floating_ip_status_reported(link: Link) -> None:
    """The host runs the router (the only host, so it is bound there) and reports it:
    the floating IP turns ACTIVE once its NAT is in place, DOWN again once
    disassociated (``HostToServer.report_routers``)."""
    cloud = link.cloud
    net = "/network/v2.0"

    def call(method: str, path: str, **body: Any) -> dict[str, Any]:
        r = cloud.request(method, f"{net}/{path}", json=body or None)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    public = call("GET", "networks?name=public")["networks"][0]["id"]
    network = call("POST", "networks", network={"name": "n"})["network"]["id"]
    subnet = call("POST", "subnets", subnet={"network_id": network, "cidr": "10.8.0.0/24",
                                             "ip_version": 4})["subnet"]["id"]
    router = call("POST", "routers", router={
        "name": "r", "external_gateway_info": {"network_id": public}})["router"]["id"]
    call("PUT", f"routers/{router}/add_router_interface", subnet_id=subnet)
    port = call("POST", "ports", port={"network_id": network})["port"]["id"]
    fip = call("POST", "floatingips", floatingip={"floating_network_id": public,
                                                  "port_id": port})["floatingip"]["id"]
    deadline = time.monotonic() + 20
    while call("GET", f"floatingips/{fip}")["floatingip"]["status"] != "ACTIVE":
        assert time.monotonic() < deadline, "the floating IP never turned ACTIVE"
        time.sleep(0.1)
    [agent] = call("GET", f"routers/{router}/l3-agents")["agents"]
    assert agent["host"] == link.host and agent["alive"]
    assert call("GET", f"routers/{router}")["router"]["status"] == "ACTIVE"
    call("PUT", f"floatingips/{fip}", floatingip={"port_id": None})
    assert call("GET", f"floatingips/{fip}")["floatingip"]["status"] == "DOWN"
