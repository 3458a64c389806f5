"""POST /compute/v2.1/servers/{id}/action, os-instance-actions and remote consoles.

Without an agent (``quiet``) the tests check what the API side records (task states,
task arguments, faults, actions) and which states allow what; with this host's agent
(``cloud``) they check that the actions complete.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from starlette.websockets import WebSocketDisconnect

from onestack.db.models import ComputeService, Flavor
from onestack.hostlink.types import SerialEndpoint
from tests.api.compute_helpers import (
    LATEST,
    action,
    boot,
    boot_env,
    force_state,
    nova,
    nova_error,
    ok,
    server,
    tenant,
    wait_for,
)
from tests.api.compute_helpers import (
    instance_row as row,
)


def done(cloud, server_id: str, **values) -> None:
    """Finish the pending task as the host would."""
    force_state(cloud, server_id, task_state=None, task_args={}, **values)


# -- the state machine, API side -----------------------------------------------------------


@pytest.mark.parametrize("body, task, args", [
    ({"os-stop": None}, "powering-off", {}),
    ({"reboot": {"type": "SOFT"}}, "rebooting", {"reboot_type": "SOFT"}),
    ({"reboot": {"type": "hard"}}, "rebooting_hard", {"reboot_type": "HARD"}),
    ({"pause": None}, "pausing", {}),
    ({"suspend": {}}, "suspending", {}),
])
def test_actions_from_active_set_their_task(quiet, sid, body, task, args):
    r = action(quiet, sid, body)
    assert r.status_code == 202 and r.content == b""
    inst = row(quiet, sid)
    assert (inst.task_state, inst.task_args) == (task, args)
    name = next(iter(body)).replace("os-", "")
    actions = ok(nova(quiet, "GET", f"/servers/{sid}/os-instance-actions"))["instanceActions"]
    assert actions[0]["action"] == name and actions[0]["message"] is None
    # a second request while the task is pending is refused with Nova's message
    r = action(quiet, sid, body)
    if task != "rebooting_hard":
        nova_error(r, 409, f"Cannot '{name}' instance {sid} while it is in task_state "
                           f"{task}")
    else:
        assert r.status_code == 202  # a hard reboot may replace a pending reboot


@pytest.mark.parametrize("vm_state, body, task", [
    ("stopped", {"os-start": None}, "powering-on"),
    ("paused", {"unpause": None}, "unpausing"),
    ("suspended", {"resume": None}, "resuming"),
    ("error", {"os-stop": None}, "powering-off"),
    ("stopped", {"reboot": {"type": "HARD"}}, "rebooting_hard"),
    ("paused", {"reboot": {"type": "HARD"}}, "rebooting_hard"),
    ("error", {"reboot": {"type": "HARD"}}, "rebooting_hard"),
])
def test_actions_from_other_states(quiet, sid, vm_state, body, task):
    force_state(quiet, sid, vm_state=vm_state)
    assert action(quiet, sid, body).status_code == 202
    assert row(quiet, sid).task_state == task


@pytest.mark.parametrize("vm_state, body, name", [
    ("stopped", {"os-stop": None}, "stop"),
    ("active", {"os-start": None}, "start"),
    ("stopped", {"reboot": {"type": "SOFT"}}, "reboot"),
    ("stopped", {"pause": None}, "pause"),
    ("active", {"unpause": None}, "unpause"),
    ("paused", {"suspend": None}, "suspend"),
    ("active", {"resume": None}, "resume"),
    ("paused", {"rebuild": {"imageRef": "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f"}},
     "rebuild"),
    ("paused", {"resize": {"flavorRef": "2"}}, "resize"),
    ("active", {"confirmResize": None}, "confirmResize"),
    ("active", {"revertResize": None}, "revertResize"),
    ("error", {"createImage": {"name": "snap"}}, "createImage"),
    ("active", {"restore": None}, "restore"),
])
def test_actions_refused_in_the_wrong_state(quiet, sid, vm_state, body, name):
    force_state(quiet, sid, vm_state=vm_state)
    nova_error(action(quiet, sid, body), 409,
               f"Cannot '{name}' instance {sid} while it is in vm_state {vm_state}")


def test_a_server_that_never_ran_is_refused(quiet, env):
    server_id = boot(quiet, env)["id"]
    force_state(quiet, server_id, vm_state="error", task_state=None)
    nova_error(action(quiet, server_id, {"os-stop": None}), 409,
               f"Cannot 'stop' instance {server_id} while it is in launched_at None")


def test_unknown_and_malformed_actions(quiet, sid):
    nova_error(action(quiet, sid, {"fly": None}), 400, "There is no such action: fly")
    nova_error(action(quiet, sid, {"os-stop": None, "os-start": None}), 400,
               "Malformed request body")
    nova_error(action(quiet, sid, {}), 400, "Malformed request body")
    for body, words in (({"reboot": {"type": "GENTLE"}}, "reboot/type"),
                        ({"reboot": {}}, "'type' is a required property"),
                        ({"reboot": "HARD"}, "reboot"),
                        ({"resize": {}}, "'flavorRef' is a required property"),
                        ({"resize": {"flavorRef": "2", "x": 1}}, "'x' was unexpected"),
                        ({"rebuild": {}}, "'imageRef' is a required property"),
                        ({"rebuild": {"imageRef": "nope"}}, "rebuild/imageRef"),
                        ({"createImage": {}}, "'name' is a required property"),
                        ({"createImage": {"name": "x", "metadata": {"k": 1}}},
                         "createImage/metadata/k"),
                        ({"os-getConsoleOutput": {"length": -2}}, "length"),
                        ({"os-getConsoleOutput": {"length": "ten"}}, "length"),
                        ({"lock": {"locked_reason": ""}}, "lock/locked_reason")):
        nova_error(action(quiet, sid, body), 400, words)
    nova_error(action(quiet, "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f", {"os-stop": None}), 404)
    nova_error(quiet.request("POST", f"/compute/v2.1/servers/{sid}/action", content=b"[1]"),
               400)


# -- locks -------------------------------------------------------------------------------


def test_lock_and_unlock(quiet, env):
    member = tenant(quiet, "owner")
    member_env = boot_env(quiet, token=member.token, image=env.image)
    server_id = boot(quiet, member_env)["id"]
    force_state(quiet, server_id, vm_state="active", task_state=None)
    t = member.token
    r = action(quiet, server_id, {"lock": {"locked_reason": "maintenance"}}, token=t)
    assert r.status_code == 202
    body = server(quiet, server_id, token=t)
    assert body["locked"] is True and body["locked_reason"] == "maintenance"
    assert "locked_reason" not in server(quiet, server_id, token=t, microversion="2.72")
    assert server(quiet, server_id, token=t, microversion="2.9")["locked"] is True
    for body_ in ({"os-stop": None}, {"reboot": {"type": "HARD"}}, {"pause": None},
                  {"resize": {"flavorRef": "2"}}, {"rebuild": {"imageRef": env.image}}):
        nova_error(action(quiet, server_id, body_, token=t), 409,
                   f"Instance {server_id} is locked")
    nova_error(nova(quiet, "POST", f"/servers/{server_id}/metadata", token=t,
                    json={"metadata": {"a": "b"}}), 409, "is locked")
    # admins are not held by locks
    assert action(quiet, server_id, {"pause": None}).status_code == 202
    assert action(quiet, server_id, {"unlock": None}, token=t).status_code == 202
    body = server(quiet, server_id, token=t)
    assert body["locked"] is False and body["locked_reason"] is None
    # an admin's lock is the admin's to lift
    assert action(quiet, server_id, {"lock": None}).status_code == 202
    assert row(quiet, server_id).locked_by == "admin"
    nova_error(action(quiet, server_id, {"unlock": None}, token=t), 403,
               "os_compute_api:os-lock-server:unlock:unlock_override")
    assert action(quiet, server_id, {"unlock": None}).status_code == 202
    actions = [a["action"] for a in ok(nova(quiet, "GET",
                                            f"/servers/{server_id}/os-instance-actions",
                                            token=t))["instanceActions"]]
    assert actions[:2] == ["unlock", "lock"] and "create" in actions


# -- rebuild, resize, images ---------------------------------------------------------------


def test_rebuild(quiet, env, sid):
    from tests.api.compute_helpers import upload_image

    new_image = upload_image(quiet, name="other")
    r = action(quiet, sid, {"rebuild": {"imageRef": new_image, "name": "again",
                                        "metadata": {"m": "1"}, "adminPass": "secret",
                                        "user_data": "aGk="}})
    assert r.status_code == 202, r.text
    body = r.json()["server"]
    assert body["adminPass"] == "secret" and body["user_data"] == "aGk="
    assert body["name"] == "again" and body["metadata"] == {"m": "1"}
    assert body["image"]["id"] == new_image and body["status"] == "REBUILD"
    assert r.headers["Location"].endswith(f"/servers/{sid}")
    inst = row(quiet, sid)
    assert inst.task_args == {"image_ref": new_image, "previous_vm_state": "active"}
    assert inst.image_meta["name"] == "other"
    old = action(quiet, boot(quiet, env)["id"], {"rebuild": {"imageRef": new_image}},
                 microversion="2.1")
    nova_error(old, 409)
    force_state(quiet, sid, task_state=None, vm_state="stopped")
    r = action(quiet, sid, {"rebuild": {"imageRef": new_image, "description": "x"}},
               microversion="2.1")
    nova_error(r, 400, "'description' was unexpected")
    nova_error(action(quiet, sid, {"rebuild": {"imageRef": "6b9f6c55-0c9e-4a54-9f7a-"
                                                           "6f1b2d3c4e5f"}}),
               400, "Cannot find image for rebuild")
    nova_error(action(quiet, sid, {"rebuild": {"imageRef": new_image, "key_name": "no"}}),
               400, "Invalid key_name provided.")
    r = action(quiet, sid, {"rebuild": {"imageRef": new_image}}, microversion="2.1")
    assert r.status_code == 202 and "user_data" not in r.json()["server"]
    assert row(quiet, sid).task_args["previous_vm_state"] == "stopped"


def test_resize_confirm_and_revert(quiet, sid):
    nova_error(action(quiet, sid, {"resize": {"flavorRef": "1"}}), 400,
               "When resizing, instances must change flavor!")
    nova_error(action(quiet, sid, {"resize": {"flavorRef": "404"}}), 400,
               "Flavor 404 could not be found.")
    r = action(quiet, sid, {"resize": {"flavorRef": "http://x/flavors/2"}})
    assert r.status_code == 202
    inst = row(quiet, sid)
    assert inst.task_state == "resize_prep" and inst.new_flavor["id"] == "2"
    assert inst.task_args == {"previous_vm_state": "active"}
    assert server(quiet, sid)["status"] == "RESIZE"
    # the host finished: the new flavor is in place
    done(quiet, sid, vm_state="resized", flavor=inst.new_flavor, new_flavor=inst.new_flavor)
    assert server(quiet, sid)["status"] == "VERIFY_RESIZE"
    assert action(quiet, sid, {"confirmResize": None}).status_code == 204
    inst = row(quiet, sid)
    assert (inst.vm_state, inst.old_flavor, inst.new_flavor) == ("active", None, None)
    assert (inst.vcpus, inst.memory_mb, inst.root_gb) == (1, 2048, 20)
    assert server(quiet, sid)["flavor"]["original_name"] == "m1.small"
    # and a revert
    assert action(quiet, sid, {"resize": {"flavorRef": "3"}}).status_code == 202
    done(quiet, sid, vm_state="resized")
    assert action(quiet, sid, {"revertResize": None}).status_code == 202
    inst = row(quiet, sid)
    assert inst.task_state == "resize_reverting"
    assert inst.task_args == {"previous_vm_state": "active"}
    assert server(quiet, sid)["status"] == "REVERT_RESIZE"


def test_resize_refusals(quiet, sid):
    with quiet.services.db.session() as session:
        session.add(Flavor(id="tiny0", name="zero", vcpus=1, ram=512, disk=0))
        session.add(Flavor(id="huge", name="huge", vcpus=2, ram=40000, disk=20))
    nova_error(action(quiet, sid, {"resize": {"flavorRef": "tiny0"}}), 400,
               "Resize to zero disk flavor is not allowed.")
    # the host cannot hold it: the server stays, with a fault and a failed action
    assert action(quiet, sid, {"resize": {"flavorRef": "huge"}}).status_code == 202
    inst = row(quiet, sid)
    assert inst.task_state is None and inst.new_flavor is None
    assert "No valid host was found. host-a: not enough" in inst.faults[-1].message
    actions = ok(nova(quiet, "GET", f"/servers/{sid}/os-instance-actions"))["instanceActions"]
    assert (actions[0]["action"], actions[0]["message"]) == ("resize", "Error")
    # a host whose agent is down cannot resize
    with quiet.services.db.session() as session:
        session.query(ComputeService).filter_by(host="host-a").one().forced_down = True
    nova_error(action(quiet, sid, {"resize": {"flavorRef": "2"}}), 409,
               "Service is unavailable at this time.")


def test_create_image(quiet, sid):
    r = action(quiet, sid, {"createImage": {"name": "snap", "metadata": {"purpose": "b"}}},
               microversion="2.44")
    assert r.status_code == 202 and r.content == b""
    image_id = r.headers["Location"].rsplit("/", 1)[1]
    assert r.headers["Location"] == f"http://127.0.0.1:5000/image/v2/images/{image_id}"
    image = ok(quiet.request("GET", f"/image/v2/images/{image_id}"))
    assert image["status"] == "queued" and image["visibility"] == "private"
    assert image["image_type"] == "snapshot" and image["instance_uuid"] == sid
    assert image["purpose"] == "b" and image["disk_format"] == "qcow2"
    inst = row(quiet, sid)
    assert (inst.task_state, inst.task_args) == ("image_snapshot", {"image_id": image_id})
    nova_error(action(quiet, sid, {"createImage": {"name": "again"}}), 409,
               "task_state image_snapshot")
    done(quiet, sid)
    r = action(quiet, sid, {"createImage": {"name": "snap2"}})
    assert r.status_code == 202 and set(r.json()) == {"image_id"}
    done(quiet, sid)
    nova_error(action(quiet, sid, {"createImage": {"name": "x", "metadata": {
        "visibility": "public"}}}), 400, "reserved")
    images = ok(quiet.request("GET", "/image/v2/images?name=x"))["images"]
    assert images == []


def test_force_delete_and_restore(quiet, sid):
    nova_error(action(quiet, sid, {"restore": None}), 409, "vm_state active")
    assert action(quiet, sid, {"forceDelete": None}).status_code == 202
    assert row(quiet, sid).task_state == "deleting"


# -- consoles ------------------------------------------------------------------------------


class FakeAgent:
    """A host as the server sees it (``hostlink.ServerToHost``), for consoles: a log and
    a serial socket (an echo server on a unix socket)."""

    host = "host-a"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "serial.sock"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        self.listener.listen(1)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"login: ")
                while data := conn.recv(1024):
                    conn.sendall(data.upper())

    def console_log(self, uuid: str, lines: int | None = None) -> str:
        text = ["boot\x01", "line 2", "line 3"]
        return "".join(f"{line}\n" for line in (text[-lines:] if lines else text))

    def serial_endpoint(self, uuid: str) -> SerialEndpoint:
        return SerialEndpoint(kind="unix", address=str(self.path))

    def wake(self) -> None:
        pass

    def uptime(self) -> str:
        return " 10:00:00 up 1 day,  load average: 0.00, 0.00, 0.00"

    def capabilities(self) -> dict[str, bool]:
        return {}


@pytest.fixture
def agent(quiet, tmp_path):
    fake = FakeAgent(tmp_path)
    quiet.services.compute.host_links.add(fake)
    yield fake
    fake.listener.close()


def test_console_output(quiet, sid, agent):
    r = action(quiet, sid, {"os-getConsoleOutput": {}})
    assert ok(r) == {"output": "boot\nline 2\nline 3\n"}  # control characters removed
    # Nova's tail: the last ``length`` pieces split on newlines (Tempest counts them).
    for length, output in ((3, "line 2\nline 3\n"), ("2", "line 3\n"), (0, "")):
        got = ok(action(quiet, sid, {"os-getConsoleOutput": {"length": length}}))["output"]
        assert got == output
        assert len(got.split("\n")) == (int(length) or 1)
    assert ok(action(quiet, sid, {"os-getConsoleOutput": {"length": -1}}))["output"].count(
        "\n") == 3
    force_state(quiet, sid, vm_state="stopped")
    assert action(quiet, sid, {"os-getConsoleOutput": {}}).status_code == 200
    quiet.services.compute.host_links.remove("host-a")
    nova_error(action(quiet, sid, {"os-getConsoleOutput": {}}), 409, "is not ready")


def test_console_output_needs_a_host(quiet, env):
    server_id = boot(quiet, env)["id"]
    force_state(quiet, server_id, host=None, vm_state="error", task_state=None)
    nova_error(action(quiet, server_id, {"os-getConsoleOutput": {}}), 409,
               f"Instance {server_id} is not ready")


def test_serial_console_websocket(quiet, sid, agent):
    r = nova(quiet, "POST", f"/servers/{sid}/remote-consoles", microversion="2.6",
             json={"remote_console": {"protocol": "serial", "type": "serial"}})
    console = ok(r)["remote_console"]
    assert (console["protocol"], console["type"]) == ("serial", "serial")
    assert console["url"].startswith("ws://127.0.0.1:5000/compute/serial-console?token=")
    path = console["url"].split("127.0.0.1:5000", 1)[1]
    with quiet.client.websocket_connect(path, subprotocols=["binary"]) as ws:
        assert ws.accepted_subprotocol == "binary"
        assert ws.receive_bytes() == b"login: "
        ws.send_bytes(b"root\n")
        assert ws.receive_bytes() == b"ROOT\n"
        ws.send_text("ls\n")
        assert ws.receive_bytes() == b"LS\n"
    with pytest.raises(WebSocketDisconnect):
        with quiet.client.websocket_connect("/compute/serial-console?token=forged") as ws:
            ws.receive_bytes()
    with pytest.raises(WebSocketDisconnect):
        with quiet.client.websocket_connect("/compute/serial-console") as ws:
            ws.receive_bytes()


def test_remote_console_refusals(quiet, sid, agent):
    path = f"/servers/{sid}/remote-consoles"
    nova_error(nova(quiet, "POST", path, microversion="2.5", json={
        "remote_console": {"protocol": "serial", "type": "serial"}}), 404)
    for console, words in (({"protocol": "vnc", "type": "novnc"},
                            "Unavailable console type novnc."),
                           ({"protocol": "serial", "type": "novnc"},
                            "Invalid console type novnc"),
                           ({"protocol": "mks", "type": "webmks"}, "remote_console/protocol"),
                           ({"protocol": "serial"}, "'type' is a required property"),
                           ({"protocol": "telnet", "type": "serial"},
                            "remote_console/protocol")):
        nova_error(nova(quiet, "POST", path, microversion="2.6",
                        json={"remote_console": console}), 400, words)
    assert nova(quiet, "POST", path, microversion="2.8", json={
        "remote_console": {"protocol": "mks", "type": "webmks"}}).status_code == 400
    force_state(quiet, sid, vm_state="stopped")
    nova_error(nova(quiet, "POST", path, microversion="2.6", json={
        "remote_console": {"protocol": "serial", "type": "serial"}}), 409, "is not ready")


def test_legacy_serial_console_action(quiet, sid, agent):
    r = action(quiet, sid, {"os-getSerialConsole": {"type": "serial"}}, microversion="2.5")
    console = ok(r)["console"]
    assert console["type"] == "serial" and "token=" in console["url"]
    nova_error(action(quiet, sid, {"os-getSerialConsole": {"type": "serial"}},
                      microversion="2.6"), 404)
    nova_error(action(quiet, sid, {"os-getSerialConsole": {"type": "novnc"}},
                      microversion="2.1"), 400)


# -- os-instance-actions -------------------------------------------------------------------


def test_instance_actions_by_microversion(quiet, env, sid):
    member = tenant(quiet, "actor")
    member_env = boot_env(quiet, token=member.token, image=env.image)
    server_id = boot(quiet, member_env)["id"]
    force_state(quiet, server_id, vm_state="active", task_state=None)
    t = member.token
    assert action(quiet, server_id, {"os-stop": None}, token=t).status_code == 202
    quiet.services.compute.hostapi.start_event(server_id, "compute_stop_instance")
    quiet.services.compute.hostapi.finish_task(server_id, "powering-off", vm_state="stopped",
                                               power_state=4)
    path = f"/servers/{server_id}/os-instance-actions"
    listed = ok(nova(quiet, "GET", path, token=t, microversion="2.1"))["instanceActions"]
    assert [a["action"] for a in listed] == ["stop", "create"]
    assert set(listed[0]) == {"action", "instance_uuid", "request_id", "user_id",
                              "project_id", "start_time", "message"}
    newer = ok(nova(quiet, "GET", path, token=t, microversion=LATEST))["instanceActions"]
    assert "updated_at" in newer[0]
    stop_id = listed[0]["request_id"]
    one = ok(nova(quiet, "GET", f"{path}/{stop_id}", token=t, microversion="2.50"))
    assert "events" not in one["instanceAction"]  # events: admins only before 2.51
    one = ok(nova(quiet, "GET", f"{path}/{stop_id}", token=t, microversion="2.51"))
    [event] = one["instanceAction"]["events"]
    assert event["event"] == "compute_stop_instance" and event["result"] == "Success"
    assert "traceback" not in event and "hostId" not in event
    event = ok(nova(quiet, "GET", f"{path}/{stop_id}", token=t, microversion=LATEST))[
        "instanceAction"]["events"][0]
    assert event["hostId"] and "host" not in event and "details" not in event
    admin = ok(nova(quiet, "GET", f"{path}/{stop_id}", microversion=LATEST))[
        "instanceAction"]["events"][0]
    assert admin["host"] == "host-a" and "traceback" in admin and "details" in admin
    nova_error(nova(quiet, "GET", f"{path}/req-nope", token=t), 404,
               "Action req-nope not found")
    # paging (2.58)
    page = ok(nova(quiet, "GET", f"{path}?limit=1", token=t, microversion="2.58"))
    assert [a["action"] for a in page["instanceActions"]] == ["stop"]
    assert f"marker={stop_id}" in page["links"][0]["href"]
    page = ok(nova(quiet, "GET", f"{path}?marker={stop_id}", token=t, microversion="2.58"))
    assert [a["action"] for a in page["instanceActions"]] == ["create"]
    nova_error(nova(quiet, "GET", f"{path}?marker=nope", token=t, microversion="2.58"), 400)
    nova_error(nova(quiet, "GET", f"{path}?changes-before=2020-01-01T00:00:00Z", token=t,
                    microversion="2.65"), 400, "'changes-before' was unexpected")
    assert ok(nova(quiet, "GET", f"{path}?changes-before=2020-01-01T00:00:00Z", token=t,
                   microversion="2.66")) == {"instanceActions": []}
    nova_error(nova(quiet, "GET", f"{path}?limit=x", token=t, microversion="2.58"), 400)
    # deleted servers' actions: from 2.21
    assert nova(quiet, "DELETE", f"/servers/{server_id}", token=t).status_code == 204
    quiet.services.compute.hostapi.instance_deleted(server_id)
    nova_error(nova(quiet, "GET", path, token=t, microversion="2.20"), 404)
    listed = ok(nova(quiet, "GET", path, token=t, microversion="2.21"))["instanceActions"]
    assert listed[0]["action"] == "delete"


# -- with this host's agent ----------------------------------------------------------------


def test_actions_complete_on_the_host(cloud):
    env = boot_env(cloud)
    server_id = boot(cloud, env)["id"]
    wait_for(cloud, server_id, "ACTIVE")
    for body, status in (({"os-stop": None}, "SHUTOFF"), ({"os-start": None}, "ACTIVE"),
                         ({"reboot": {"type": "SOFT"}}, "ACTIVE"),
                         ({"pause": None}, "PAUSED"), ({"unpause": None}, "ACTIVE"),
                         ({"suspend": None}, "SUSPENDED"), ({"resume": None}, "ACTIVE"),
                         ({"resize": {"flavorRef": "2"}}, "VERIFY_RESIZE"),
                         ({"confirmResize": None}, "ACTIVE"),
                         ({"rebuild": {"imageRef": env.image}}, "ACTIVE")):
        r = action(cloud, server_id, body)
        assert r.status_code in (202, 204), r.text
        body_ = wait_for(cloud, server_id, status)
    assert body_["flavor"]["original_name"] == "m1.small"
    assert body_["OS-EXT-STS:power_state"] == 1
    output = ok(action(cloud, server_id, {"os-getConsoleOutput": {"length": 50}}))["output"]
    assert server_id in output
    image_id = ok(action(cloud, server_id, {"createImage": {"name": "snap"}}), 202)[
        "image_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        image = ok(cloud.request("GET", f"/image/v2/images/{image_id}"))
        if image["status"] == "active":
            break
        time.sleep(0.05)
    assert image["status"] == "active" and image["base_image_ref"] == env.image
    wait_for(cloud, server_id, "ACTIVE")
    events = []
    for item in ok(nova(cloud, "GET", f"/servers/{server_id}/os-instance-actions"))[
            "instanceActions"]:
        detail = ok(nova(cloud, "GET", f"/servers/{server_id}/os-instance-actions/"
                         f"{item['request_id']}", microversion=LATEST))["instanceAction"]
        events += [(item["action"], e["event"], e["result"]) for e in detail["events"]]
    assert ("create", "compute__do_build_and_run_instance", "Success") in events
    assert ("stop", "compute_stop_instance", "Success") in events
    assert ("createImage", "compute_snapshot_instance", "Success") in events


# -- admin actions and security groups -------------------------------------------------


def test_reset_state_is_for_admins(quiet, env, sid):
    force_state(quiet, sid, task_state="powering-off")
    member = tenant(quiet, "resetter")
    nova_error(action(quiet, sid, {"os-resetState": {"state": "active"}},
                      token=member.token), 404)
    nova_error(action(quiet, sid, {"os-resetState": {"state": "stopped"}}), 400,
               "os-resetState/state")
    assert action(quiet, sid, {"os-resetState": {"state": "error"}}).status_code == 202
    body = server(quiet, sid)
    assert (body["status"], body["OS-EXT-STS:task_state"]) == ("ERROR", None)
    member_env = boot_env(quiet, token=member.token, image=env.image)
    own = boot(quiet, member_env)["id"]
    nova_error(action(quiet, own, {"os-resetState": {"state": "active"}},
                      token=member.token), 403, "os-admin-actions:reset_state")


def test_add_and_remove_security_groups(quiet, sid):
    r = quiet.request("POST", "/network/v2.0/security-groups",
                      json={"security_group": {"name": "ssh"}})
    ssh = r.json()["security_group"]["id"]
    assert action(quiet, sid, {"addSecurityGroup": {"name": "ssh"}}).status_code == 202
    assert action(quiet, sid, {"addSecurityGroup": {"name": ssh}}).status_code == 202
    assert server(quiet, sid)["security_groups"] == [{"name": "default"}, {"name": "ssh"}]
    assert action(quiet, sid, {"removeSecurityGroup": {"name": "ssh"}}).status_code == 202
    assert server(quiet, sid)["security_groups"] == [{"name": "default"}]
    nova_error(action(quiet, sid, {"removeSecurityGroup": {"name": "ssh"}}), 404,
               "not associated with the instance")
    nova_error(action(quiet, sid, {"addSecurityGroup": {"name": "nope"}}), 404,
               "Security group nope is not found")
    nova_error(action(quiet, sid, {"addSecurityGroup": {"name": " "}}), 400,
               "Security group name cannot be empty")
    nova_error(action(quiet, sid, {"addSecurityGroup": {}}), 400)
