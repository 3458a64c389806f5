"""Compute with the stock ``openstack`` CLI and openstacksdk against a real
``onestack up`` (fake host drivers: the API and agent are real, the guests are not;
tests/host/ boots real ones).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import openstack as sdk
import pytest

from onestack.drivers.storage.fake import write_empty_qcow2

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning"),
]


@pytest.fixture(scope="module")
def boot_env(openstack, tmp_path_factory):
    """An image (a valid empty qcow2) and a network with IPv4 and IPv6 subnets."""
    tmp: Path = tmp_path_factory.mktemp("compute")
    disk = tmp / "disk.qcow2"
    write_empty_qcow2(disk, 1 << 30)
    image = openstack("image", "create", "--disk-format", "qcow2", "--container-format",
                      "bare", "--file", str(disk), "--public", "e2e-compute-img")
    net = openstack("network", "create", "e2e-compute-net")
    openstack("subnet", "create", "--network", "e2e-compute-net", "--subnet-range",
              "10.77.0.0/24", "e2e-compute-v4")
    openstack("subnet", "create", "--network", "e2e-compute-net", "--ip-version", "6",
              "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac",
              "--subnet-range", "fd00:77::/64", "e2e-compute-v6")
    return {"image": image["id"], "network": net["id"], "tmp": tmp}


def wait_status(openstack, name, status, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        server = openstack("server", "show", name)
        if server["status"] == status and not server.get("OS-EXT-STS:task_state"):
            return server
        assert time.monotonic() < deadline, server
        time.sleep(0.3)


def test_flavors_keypairs_and_catalog(openstack, unique, boot_env):
    flavors = {f["Name"] for f in openstack("flavor", "list")}
    assert {"m1.nano", "m1.tiny", "m1.small"} <= flavors
    name = f"e2e-flavor-{unique}"
    openstack("flavor", "create", "--vcpus", "2", "--ram", "256", "--disk", "2",
              "--property", "hw:cpu_policy=shared", name)
    shown = openstack("flavor", "show", name)
    assert shown["vcpus"] == 2 and shown["ram"] == 256
    assert "hw:cpu_policy" in str(shown["properties"])
    openstack("flavor", "delete", name)
    pub = boot_env["tmp"] / "k.pub"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    pub.write_text(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode())
    openstack("keypair", "create", "--public-key", str(pub), f"key-{unique}")
    assert f"key-{unique}" in {k["Name"] for k in openstack("keypair", "list")}
    assert any(e["Name"] == "nova" for e in openstack("catalog", "list"))
    assert openstack("hypervisor", "list")[0]["State"] == "up"
    services = openstack("compute", "service", "list")
    assert {"nova-compute", "nova-scheduler"} <= {s["Binary"] for s in services}
    assert "nova" in {z["Zone Name"] for z in openstack("availability", "zone", "list",
                                                        "--compute")}
    quota = openstack("quota", "show", "--compute")
    assert quota


def test_server_lifecycle_cli(openstack, unique, boot_env):
    name = f"e2e-vm-{unique}"
    created = openstack("server", "create", "--image", "e2e-compute-img", "--flavor",
                        "m1.nano", "--network", "e2e-compute-net", "--property", "role=web",
                        "--wait", name)
    assert created["status"] == "ACTIVE"
    server = openstack("server", "show", name)
    text = str(server["addresses"])
    assert "10.77.0." in text and "fd00:77::" in text
    assert name in {s["Name"] for s in openstack("server", "list")}
    assert "fake" in openstack("console", "log", "show", name, json_output=False).lower()
    openstack("server", "stop", name)
    wait_status(openstack, name, "SHUTOFF")
    openstack("server", "start", name)
    wait_status(openstack, name, "ACTIVE")
    openstack("server", "reboot", "--hard", "--wait", name, json_output=False)
    openstack("server", "pause", name)
    wait_status(openstack, name, "PAUSED")
    openstack("server", "unpause", name)
    wait_status(openstack, name, "ACTIVE")
    openstack("server", "suspend", name)
    wait_status(openstack, name, "SUSPENDED")
    openstack("server", "resume", name)
    wait_status(openstack, name, "ACTIVE")
    openstack("server", "lock", name)
    openstack("server", "unlock", name)
    openstack("server", "set", "--property", "tier=1", name)
    assert "tier" in str(openstack("server", "show", name)["properties"])
    events = openstack("server", "event", "list", name)
    assert {"create", "stop", "start"} <= {e["Action"] for e in events}
    openstack("server", "resize", "--flavor", "m1.micro", "--wait", name, json_output=False)
    wait_status(openstack, name, "VERIFY_RESIZE")
    openstack("server", "resize", "confirm", name)
    wait_status(openstack, name, "ACTIVE")
    assert openstack("server", "show", name)["flavor"]
    openstack("server", "delete", "--wait", name, json_output=False)
    assert name not in {s["Name"] for s in openstack("server", "list")}


def test_bad_requests_are_4xx(openstack, unique, boot_env):
    err = openstack.fails("server", "create", "--image", "e2e-compute-img", "--flavor",
                          "no-such-flavor", "--network", "e2e-compute-net", f"bad-{unique}")
    assert "no-such-flavor" in err.stderr or "Flavor" in err.stderr
    err = openstack.fails("server", "show", f"missing-{unique}")
    assert "No Server found" in err.stderr


def test_sdk_compute(server, monkeypatch, unique, boot_env):
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(server.clouds_yaml))
    conn = sdk.connect(cloud="onestack")
    try:
        flavor = conn.compute.find_flavor("m1.nano", ignore_missing=False)
        created = conn.compute.create_server(
            name=f"sdk-vm-{unique}", image_id=boot_env["image"], flavor_id=flavor.id,
            networks=[{"uuid": boot_env["network"]}], metadata={"made-by": "sdk"})
        vm = conn.compute.wait_for_server(created, status="ACTIVE", wait=30)
        assert vm.addresses and vm.metadata == {"made-by": "sdk"}
        conn.compute.stop_server(vm)
        conn.compute.wait_for_server(vm, status="SHUTOFF", wait=30)
        conn.compute.start_server(vm)
        conn.compute.wait_for_server(vm, status="ACTIVE", wait=30)
        assert conn.compute.get_server_console_output(vm)["output"]
        group = conn.compute.create_server_group(name=f"grp-{unique}", policy="anti-affinity")
        assert group.policy == "anti-affinity"
        conn.compute.delete_server_group(group)
        conn.compute.delete_server(vm)
        conn.compute.wait_for_delete(vm, wait=30)
    finally:
        conn.close()
