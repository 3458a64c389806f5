"""Routes the stock clients call for features OneStack has in part or not at all
(api/compute/server_extras.py), and the fault of an unknown route: each answers as Nova
answers a cloud without the feature, never a bare 404 or a 500."""

from __future__ import annotations

import pytest

from tests.api.compute_helpers import (
    boot,
    nova,
    nova_error,
    ok,
    tenant,
)


@pytest.fixture
def sid(quiet, env):
    return boot(quiet, env)["id"]


def test_unknown_route_names_the_path_once(quiet):
    # the mount point was in the message twice (/compute/compute/v2.1/...)
    message = nova_error(nova(quiet, "GET", "/os-no-such-thing"), 404)
    assert "GET /compute/v2.1/os-no-such-thing" in message
    assert "/compute/compute/" not in message


def test_interfaces_list_and_show(quiet, env, sid):
    # openstack server remove port|network and conn.compute.server_interfaces read these
    attachments = ok(nova(quiet, "GET", f"/servers/{sid}/os-interface"))[
        "interfaceAttachments"]
    assert len(attachments) == 1
    entry = attachments[0]
    assert entry["net_id"] == env.network and len(entry["mac_addr"]) == 17
    assert entry["fixed_ips"][0]["subnet_id"] == env.subnet
    assert set(entry) == {"port_id", "net_id", "mac_addr", "port_state", "fixed_ips"}
    port_id = entry["port_id"]
    shown = ok(nova(quiet, "GET", f"/servers/{sid}/os-interface/{port_id}",
                    microversion="2.70"))["interfaceAttachment"]
    assert shown["port_id"] == port_id and shown["tag"] is None
    nova_error(nova(quiet, "GET", f"/servers/{sid}/os-interface/nope"), 404)
    # attach and detach (tests/api/test_compute_interfaces.py) wait for a server that
    # is built: Nova's 409 for its state
    nova_error(nova(quiet, "POST", f"/servers/{sid}/os-interface",
                    json={"interfaceAttachment": {"net_id": env.network}}), 409,
               "attach_interface", "vm_state building")
    nova_error(nova(quiet, "DELETE", f"/servers/{sid}/os-interface/{port_id}"), 409,
               "detach_interface")
    nova_error(nova(quiet, "DELETE", f"/servers/{sid}/os-interface/nope"), 404)
    # another project's server is not found
    other = tenant(quiet, "other")
    nova_error(nova(quiet, "GET", f"/servers/{sid}/os-interface", token=other.token), 404)


def test_volume_attachments_of_a_server_without_volumes(quiet, sid):
    # openstack server volume list (tests/api/test_compute_volume_attachments.py attaches)
    assert ok(nova(quiet, "GET", f"/servers/{sid}/os-volume_attachments")) == {
        "volumeAttachments": []}
    nova_error(nova(quiet, "GET", f"/servers/{sid}/os-volume_attachments/v1"), 404)
    nova_error(nova(quiet, "GET", "/servers/nope/os-volume_attachments"), 404)


def test_diagnostics_of_a_server_that_does_not_run(quiet, sid):
    # openstack server show --diagnostics (tests/api/test_compute_diagnostics.py)
    nova_error(nova(quiet, "GET", f"/servers/{sid}/diagnostics"), 409,
               "Cannot get_diagnostics")
    nova_error(nova(quiet, "GET", "/servers/nope/diagnostics"), 404)


def test_password_migrations_aggregates(quiet, sid):
    assert ok(nova(quiet, "GET", f"/servers/{sid}/os-server-password")) == {"password": ""}
    assert nova(quiet, "DELETE", f"/servers/{sid}/os-server-password").status_code == 204
    # openstack server migration list / conn.compute.server_migrations
    assert ok(nova(quiet, "GET", "/os-migrations", microversion="2.80")) == {
        "migrations": []}
    assert ok(nova(quiet, "GET", f"/servers/{sid}/migrations", microversion="2.80")) == {
        "migrations": []}
    # openstack hypervisor show lists the aggregates (tests/api/test_compute_aggregates.py)
    assert ok(nova(quiet, "GET", "/os-aggregates", microversion="2.81")) == {
        "aggregates": []}
    # the body is checked first (a 400, never the 501, for a malformed one)
    nova_error(nova(quiet, "POST", f"/servers/{sid}/os-interface", json={"x": 1}), 400)
    nova_error(nova(quiet, "POST", f"/servers/{sid}/os-volume_attachments",
                    json={"volumeAttachment": 5}), 400)
    other = tenant(quiet, "other")
    nova_error(nova(quiet, "GET", "/os-aggregates", token=other.token), 403)
    nova_error(nova(quiet, "GET", "/os-migrations", token=other.token), 403)


@pytest.mark.parametrize("name", ["migrate", "os-migrateLive", "evacuate",
                                  "changePassword", "trigger_crash_dump"])
def test_nova_actions_this_cloud_lacks_are_501(quiet, sid, name):
    # openstack server migrate|dump create: a clear
    # "not supported" (Nova's raise_feature_not_supported), not "no such action"
    r = nova(quiet, "POST", f"/servers/{sid}/action", json={name: None})
    message = nova_error(r, 501, "not supported", name)
    assert "no such action" not in message
    assert "notImplemented" in r.json()
    # an unknown server is still a 404
    nova_error(nova(quiet, "POST", "/servers/nope/action", json={name: None}), 404)


def test_graphical_console_actions_before_2_6(quiet, sid):
    nova_error(nova(quiet, "POST", f"/servers/{sid}/action",
                    json={"os-getVNCConsole": {"type": "novnc"}}), 400,
               "Unavailable console type novnc.")
    # gone from 2.6, as in Nova (like os-getSerialConsole)
    nova_error(nova(quiet, "POST", f"/servers/{sid}/action", microversion="2.6",
                    json={"os-getVNCConsole": {"type": "novnc"}}), 404)
